"""Driver options: which belong to which driver, and where secrets go.

A command collects every driver's flags (and their environment variables); only the
chosen driver's are kept, so an openrc sourced in the shell never reaches a local
machine. Options a driver declares secret (passwords, application-credential secrets,
EC2 keys) are split off before anything is recorded: they go to a 0600 file per
cluster, machine or template, and are merged back only when a driver is made.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flotte import drivers, logs, option_files
from flotte.config import write_secret
from flotte.errors import UsageError

# Options every driver understands, beside its own.
COMMON = frozenset({"engine_install_url"})
SCOPES = ("machines", "clusters", "templates")


def declared(driver: str) -> dict[str, bool]:
    """The option keys ``driver`` declares, each with whether it is secret."""
    return {o.key: o.secret for o in drivers.options(driver)}


def field_keys(driver: str) -> dict[str, str]:
    """Magnum field -> the option of ``driver`` that takes it (``flavor_id`` -> ...)."""
    return {o.template_field: o.key for o in drivers.options(driver) if o.template_field}


def placement(driver: str) -> str | None:
    """The option of ``driver`` that says where a node goes (ssh: the host), if any."""
    return next((o.key for o in drivers.options(driver) if o.placement), None)


def only(driver_names: Iterable[str], options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that belong to these drivers, without empty values."""
    keys = set(COMMON)
    for name in driver_names:
        keys |= set(declared(name))
    return {k: v for k, v in options.items() if k in keys and v not in (None, "", (), [])}


def check_known(driver: str, options: Mapping[str, Any], where: str) -> None:
    """Refuse options ``driver`` does not declare (a template's --driver-opt...)."""
    keys = set(declared(driver)) | COMMON
    unknown = sorted(set(options) - keys)
    if unknown:
        close = sorted(k for k in keys if unknown[0].split("_")[-1] in k)
        hint = f"did you mean {', '.join(close[:3])}?" if close else None
        prefix = f"{where}: " if where else ""
        raise UsageError(f"{prefix}the {driver} driver has no option {unknown[0]!r}", hint=hint)


def split(
    driver_names: Iterable[str], options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, secret) options of these drivers."""
    secret_keys: set[str] = set()
    for name in driver_names:
        secret_keys |= {k for k, s in declared(name).items() if s}
    public = {k: v for k, v in options.items() if k not in secret_keys}
    secret = {k: v for k, v in options.items() if k in secret_keys and v not in (None, "")}
    for value in secret.values():
        logs.add_secret(str(value))  # masked in every log line from now on
    return public, secret


class OptionStore:
    """Secret options of each cluster, machine and template, one 0600 file each."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, scope: str, name: str) -> Path:
        if scope not in SCOPES:
            raise ValueError(scope)
        return self.root / scope / name / "options.json"

    def save(self, scope: str, name: str, secret: Mapping[str, Any]) -> None:
        path = self._file(scope, name)
        if secret:
            write_secret(path, json.dumps(dict(secret)).encode())
        elif path.exists():
            path.unlink()

    def load(self, scope: str, name: str) -> dict[str, Any]:
        return option_files.load(str(self._file(scope, name)), f"{scope[:-1]} {name!r}")

    def forget(self, scope: str, name: str) -> None:
        path = self._file(scope, name)
        if path.exists():
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()
