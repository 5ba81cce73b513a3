"""Reading a docker-machine store, never writing to it.

docker-machine keeps each machine in ``<store>/machines/<name>/`` (the store is
``$MACHINE_STORAGE_PATH``, default ``~/.docker/machine``): ``config.json`` (its
``libmachine/host`` record: ``ConfigVersion``, ``Driver``, ``DriverName``,
``HostOptions`` with ``EngineOptions``, ``SwarmOptions`` and ``AuthOptions``, ``Name``)
beside copies of the CA and client certificates (``ca.pem``, ``cert.pem``,
``key.pem``), the engine's certificate (``server.pem``, ``server-key.pem``) and the SSH
key (``id_rsa``). Paths inside ``config.json`` are absolute and name the computer that
wrote them; a store copied elsewhere is read by rebasing them onto where it is now.

Files are only ever opened for reading; the CA's private key (``CaPrivateKeyPath``) is
never opened at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotte.errors import ConfigError, UsageError

STORE_ENV = "MACHINE_STORAGE_PATH"
# libmachine/version: the newest config.json layout docker-machine ever wrote.
LAST_CONFIG_VERSION = 3


def default_store() -> Path:
    """``$MACHINE_STORAGE_PATH``, else ``~/.docker/machine``: where docker-machine kept it."""
    env = os.environ.get(STORE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".docker" / "machine"


def machine_dirs(store: Path) -> list[Path]:
    """Every entry of ``<store>/machines``; raise UsageError if ``store`` is not a store."""
    if not store.exists():
        raise UsageError(
            f"{store}: no such directory",
            hint=f"give the directory docker-machine used (${STORE_ENV}, default ~/.docker/machine)",
        )
    if not store.is_dir():
        raise UsageError(f"{store} is a file, not a docker-machine directory")
    machines = store / "machines"
    if not machines.is_dir():
        raise UsageError(
            f"{store} is not a docker-machine directory (it has no machines/ folder)",
            hint=f"give the directory docker-machine used (${STORE_ENV}, default ~/.docker/machine)",
        )
    return sorted(p for p in machines.iterdir() if not p.name.startswith("."))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config.json: {where} is not an object")
    return value


@dataclass(frozen=True)
class MachineConfig:
    """One machine's ``config.json``, with its paths resolved against where the store is."""

    name: str
    directory: Path  # <store>/machines/<name>, as found
    store: Path
    driver_name: str
    driver: Mapping[str, Any]
    engine: Mapping[str, Any]
    swarm: Mapping[str, Any]
    auth: Mapping[str, Any]

    @classmethod
    def load(cls, directory: Path, store: Path) -> MachineConfig:
        """Parse ``directory/config.json``; ConfigError says what is wrong in one phrase."""
        path = directory / "config.json"
        if not directory.is_dir() or not path.is_file():
            raise ConfigError("not a docker-machine machine directory (no config.json)")
        try:
            data = json.loads(path.read_bytes())
        except OSError as err:
            raise ConfigError(f"cannot read config.json: {err.strerror}") from err
        except ValueError as err:
            raise ConfigError(f"config.json is not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise ConfigError("config.json is not a JSON object")
        version = data.get("ConfigVersion", 0)
        if not isinstance(version, int) or version > LAST_CONFIG_VERSION:
            raise ConfigError(
                f"config.json has ConfigVersion {version!r}, newer than any docker-machine "
                f"release ({LAST_CONFIG_VERSION})"
            )
        host = _mapping(data.get("HostOptions"), "HostOptions")
        driver_name = data.get("DriverName")
        if not host or not isinstance(driver_name, str) or not driver_name:
            raise ConfigError(
                "config.json has no DriverName or HostOptions "
                "(written by docker-machine older than 0.5? run 'docker-machine ls' once)"
            )
        return cls(
            name=str(data.get("Name") or directory.name),
            directory=directory,
            store=store,
            driver_name=driver_name,
            driver=_mapping(data.get("Driver"), "Driver"),
            engine=_mapping(host.get("EngineOptions"), "HostOptions.EngineOptions"),
            swarm=_mapping(host.get("SwarmOptions"), "HostOptions.SwarmOptions"),
            auth=_mapping(host.get("AuthOptions"), "HostOptions.AuthOptions"),
        )

    # -- paths ----------------------------------------------------------------------

    @property
    def recorded_store(self) -> str:
        """The store's path on the computer that wrote config.json."""
        machine_dir = str(self.auth.get("StorePath") or "")
        parent = os.path.dirname(machine_dir)
        if machine_dir and os.path.basename(parent) == "machines":
            return os.path.dirname(parent)
        return str(self.driver.get("StorePath") or "")

    def local(self, recorded: str | None) -> Path | None:
        """Where a path written in config.json is now (rebased if the store moved)."""
        if not recorded:
            return None
        old = self.recorded_store.rstrip("/")
        if old and (recorded == old or recorded.startswith(old + "/")):
            return self.store / os.path.relpath(recorded, old)
        return Path(recorded).expanduser()

    def find(self, filename: str, recorded: str | None = None) -> Path:
        """``filename`` in the machine's directory, else the path config.json names.

        docker-machine copies the CA and client certificates into each machine's
        directory (``docker-machine env`` points DOCKER_CERT_PATH there), so that copy
        is the one this machine's engine was set up with. Returns the first candidate
        (absent or not) when none exists, for the caller's error message.
        """
        candidates = [self.directory / filename]
        elsewhere = self.local(recorded)
        if elsewhere is not None:
            candidates.append(elsewhere)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return candidates[0]

    def text(self, key: str, default: str = "") -> str:
        value = self.driver.get(key)
        return str(value) if value not in (None, "") else default

    def number(self, key: str, default: int) -> int:
        value = self.driver.get(key)
        try:
            number = int(value) if value not in (None, "", 0) else default
        except (TypeError, ValueError) as err:
            raise ConfigError(f"config.json: Driver.{key} {value!r} is not a number") from err
        return number
