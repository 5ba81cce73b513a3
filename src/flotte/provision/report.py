"""What provisioning reports, and where it keeps its records on a host."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
