"""Drivers: each knows how to make and unmake nodes on one kind of target.

Drivers are found by name through the ``flotte.drivers`` entry-point group, so an
outside package can add one; nothing in flotte switches on driver names.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from typing import TYPE_CHECKING

from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.drivers.base import Driver

GROUP = "flotte.drivers"


@cache
def _registry() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


@cache
def _own() -> dict[str, str]:
    """flotte's own drivers, from its own distribution's entry points: a command that
    needs one driver does not read every installed distribution's metadata (158 in a
    test venv: 0.4 s of wall time on a loaded machine)."""
    try:
        found = distribution("flotte").entry_points.select(group=GROUP)
    except PackageNotFoundError:  # run from a source tree: the full scan decides
        return {}
    return {ep.name: ep.value for ep in found}


def names() -> list[str]:
    """Every registered driver, whether or not its module imports here."""
    return sorted(_registry())


def get(name: str) -> type[Driver]:
    """The driver class registered as ``name``; imported on first use."""
    # another package may register a driver of its own (never one of flotte's names)
    target = _own().get(name) or _registry().get(name)
    if target is None:
        raise UsageError(f"unknown driver {name!r}: choose one of {', '.join(names())}")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            raise UsageError(f"driver {name!r} is not available in this version") from err
        raise
    cls: type[Driver] = getattr(module, attr)
    return cls
