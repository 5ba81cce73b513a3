"""One flotte installation (``FLOTTE_HOME``): its files, state store, CA and drivers.

Every use case works on an ``Installation``; the CLI, the API and ``watch`` each make
one. Driver instances are made here, once per driver and options, so a command that
touches many nodes shares one API client per provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flotte import drivers, listing
from flotte.config import Paths, paths
from flotte.drivers.base import ClientPool, Driver, DriverContext
from flotte.engine.executor import Events, Executor, Step
from flotte.models import Owner
from flotte.pki import CertificateAuthority
from flotte.service.options import OptionStore
from flotte.state.database import StateError
from flotte.state.lock import locked
from flotte.state.pglock import pg_locked
from flotte.state.store import Store


def _no_events(step: Step, phase: str, detail: str = "") -> None:
    return None


class Installation:
    """The installation's state and the means to act on it."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        events: Events | None = None,
        parallelism: int | None = None,
        lock_wait: float = 0.0,
    ) -> None:
        self.paths: Paths = paths(home).ensure()
        url = os.environ.get("FLOTTE_DATABASE_URL")
        self.store = Store(url) if url else Store.at(self.paths.database)
        self.ca = CertificateAuthority(self.paths.certs).ensure()
        self.events: Events = events or _no_events
        self.parallelism = parallelism
        self.lock_wait = lock_wait
        self.options = OptionStore(self.paths.secrets)
        self._drivers: dict[tuple[str, str, str], Driver] = {}
        # One API client per provider, shared by every driver made here (node groups with
        # their own options included), made on first use.
        self.clients = ClientPool()

    def close(self) -> None:
        self.clients.close()
        self.store.close()

    @property
    def installation(self) -> str:
        return self.store.installation

    def owner(self, *, cluster: str | None = None, machine: str | None = None) -> Owner:
        return Owner(cluster=cluster, machine=machine, installation=self.store.installation)

    def ca_of(self, cluster: str | None) -> CertificateAuthority:
        """The CA a cluster's engines trust: its own when flotte serve gave it one
        (written under ``secrets/cluster-ca/NAME`` by the worker), else the installation's."""
        return listing.cluster_ca(self.paths, cluster, self.ca)

    def driver(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        ca: CertificateAuthority | None = None,
    ) -> Driver:
        """A driver instance for ``name`` with ``options`` (reused for equal options),
        signing engine certificates with ``ca`` (default: the installation's)."""
        ca = ca or self.ca
        key = (name, json.dumps(options or {}, sort_keys=True, default=str), str(ca.directory))
        if key not in self._drivers:
            cls = drivers.get(name)
            ctx = DriverContext(
                home=self.paths.machines,
                ca=ca,
                installation=self.store.installation,
                options=dict(options or {}),
                known_hosts=self.paths.known_hosts,
                progress=getattr(self.events, "note", None),
                clients=self.clients,
            )
            self._drivers[key] = cls(ctx)
        return self._drivers[key]

    @contextmanager
    def lock(self, kind: str, name: str) -> Iterator[None]:
        """The lock of a cluster or machine: every write to it happens under it.

        A file lock on this machine; an advisory lock in the database when that is
        PostgreSQL, which ``flotte serve`` processes on several machines may share.
        """
        if self.store.read_only:
            raise StateError(
                f"the state database {self.paths.database} is read-only (you cannot write "
                f"in {self.paths.data}): this command needs to change it",
                hint="reading commands work; run this one where the home is writable by you",
            )
        if self.store.engine.dialect.name == "postgresql":
            with pg_locked(self.store.engine, kind, name, wait=self.lock_wait):
                yield
        else:
            with locked(self.paths.locks, kind, name, wait=self.lock_wait):
                yield

    def executor(self, max_parallel: int, scope: str, operation: str) -> Executor:
        return Executor(
            parallelism=self.parallelism or max_parallel,
            journal=self.store.journal(scope, operation),
            events=self.events,
            # A --parallelism the user gave bounds every node step, self-paced or not.
            strict=self.parallelism is not None,
        )
