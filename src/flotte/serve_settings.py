"""What a ``flotte serve`` process is told: shared by the API (``api.app.create_app``),
the workers and the ``serve`` command that builds it from flags and the environment.

Nothing secret is held here: the secret key (which encrypts per-project accounts and
per-cluster CA keys, and signs standalone tokens) is a 0600 file named by
``secret_key_file``, made on first use. Every serve process of one installation (one
database) must read the same key file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flotte.config import paths

IdentityMode = Literal["standalone", "keystone"]
Role = Literal["api", "worker"]


class ServeSettings(BaseModel):
    """One serve process's settings; every field has the embedded default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path | None = None  # FLOTTE_HOME of the installation (None: flotte's default)
    database_url: str | None = None  # None: SQLite in home; postgresql+psycopg://... at scale
    identity: IdentityMode = "standalone"
    keystone_url: str | None = None  # Keystone mode: e.g. http://127.0.0.1:5000/v3
    default_driver: str = "local"  # a template without a `driver` label uses this
    # Drivers a project may use without a registered account (they reach nothing that
    # needs credentials). Every other driver needs `flotte account add`.
    open_drivers: tuple[str, ...] = ("local", "fake")
    roles: tuple[Role, ...] = ("api", "worker")
    host: str = "127.0.0.1"
    port: int = Field(default=9511, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are given
    secret_key_file: Path | None = None  # None: <home>/secrets/serve.key
    # The URL clients reach this server at, for the standalone catalog; None: taken
    # from each request (scheme, Host header).
    public_url: str | None = None
    token_ttl: int = Field(default=3600, ge=60)  # seconds a standalone token lives
    default_cluster_quota: int = Field(default=20, ge=0)  # Magnum's max_clusters_per_project
    region: str = "RegionOne"  # the region the catalog names
    process_name: str | None = None  # how /v1/mservices names this process (default host:pid)

    @field_validator("keystone_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.identity == "keystone" and not self.keystone_url:
            raise ValueError("Keystone mode needs keystone_url (e.g. http://HOST:5000/v3)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both a TLS certificate and its key, or neither")
        if not self.roles:
            raise ValueError("a serve process needs the api role, the worker role or both")
        return self

    @property
    def key_file(self) -> Path:
        """The secret key file (the default lives with the installation's secrets)."""
        return self.secret_key_file or paths(self.home).secrets / "serve.key"

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"
