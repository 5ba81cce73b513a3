"""What provisioning reports, and where it keeps its records on a host."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotte.models import CLUSTER_KEY, MACHINE_KEY, NODE_KEY, OWNER_KEY
from flotte.provision import engine_config

STATE_DIR = "/var/lib/flotte"  # kept after rm: what flotte installed, for --purge
INSTALL_RECORD = f"{STATE_DIR}/install.json"
OWNER_FILE = f"{engine_config.TLS_DIR}/owner.json"
APPLIED_FILE = f"{engine_config.TLS_DIR}/applied"  # digest of the setup dockerd runs with
DATA_DIRS = ("/etc/docker", "/var/lib/docker", "/var/lib/containerd")

Progress = Callable[[str, str], None]  # (host, step)


def no_progress(host: str, step: str) -> None:
    pass


@dataclass
class ProvisionReport:
    """What provisioning found on a host and what it changed there."""

    name: str
    host: str
    os: str = ""
    distro: str = ""
    arch: str = ""
    init: str = ""
    docker_version: str = ""
    installed: bool = False  # flotte installed the engine during this run
    adopted: bool = False  # the engine was there before flotte
    restarted: bool = False
    containers_kept: int = 0  # containers that kept running across the restart
    addresses: list[str] = field(default_factory=list)
    sans: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waited: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def load_record(raw: bytes | None) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# owner.json as flotte wrote it before the marks were spelled once (models.Owner.tags).
_LEGACY_OWNER_KEYS = {
    "installation": OWNER_KEY,
    "cluster": CLUSTER_KEY,
    "machine": MACHINE_KEY,
    "node": NODE_KEY,
}
_MATCHED = (OWNER_KEY, CLUSTER_KEY, MACHINE_KEY, NODE_KEY)


def owner_marks(raw: bytes | None) -> dict[str, str] | None:
    """The owner marks of a host's owner.json, None when it has none.

    The file comes from the host, so it is not trusted: anything but a JSON object of
    strings raises ValueError (the caller says which host, and what to do).
    """
    if not raw or not raw.strip():
        return None
    data = json.loads(raw)  # ValueError (JSONDecodeError, UnicodeDecodeError) when not JSON
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError("not a JSON object of strings")
    return normal_marks(data)


def normal_marks(marks: Mapping[str, str]) -> dict[str, str]:
    """Owner marks in today's spelling, whichever spelling they were recorded in."""
    return {_LEGACY_OWNER_KEYS.get(k, k): v for k, v in marks.items()}


def same_owner(wanted: dict[str, str], there: dict[str, str]) -> bool:
    """True when ``there`` carries every owner mark (and node) that ``wanted`` has."""
    return all(there.get(k) == wanted[k] for k in _MATCHED if wanted.get(k))
