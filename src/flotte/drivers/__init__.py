"""Drivers: each knows how to make and unmake nodes on one kind of target.

Drivers are found by name through the ``flotte.drivers`` entry-point group, so an
outside package can add one; nothing in flotte switches on driver names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from typing import TYPE_CHECKING, Any

from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.drivers.base import Driver, DriverOption

GROUP = "flotte.drivers"
# A driver's flags without its class: building `cluster create`'s flags imported every
# driver (botocore, asyncssh, openstacksdk's proxies: 0.3-0.45 s of each create's CPU).
OPTIONS_GROUP = "flotte.driver_options"


@cache
def _registry() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


@cache
def _own(group: str = GROUP) -> dict[str, str]:
    """flotte's own drivers, from its own distribution's entry points: a command that
    needs one driver does not read every installed distribution's metadata (158 in a
    test venv: 0.4 s of wall time on a loaded machine)."""
    try:
        found = distribution("flotte").entry_points.select(group=group)
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


def options(name: str) -> tuple[DriverOption, ...]:
    """The driver's options (its flags), read without importing the driver when it
    registers them apart (``flotte.driver_options``); otherwise from its class."""
    target = _own(OPTIONS_GROUP).get(name)
    if target is None:
        return get(name).options
    module_name, _, attr = target.partition(":")
    found: tuple[DriverOption, ...] = getattr(importlib.import_module(module_name), attr)
    return found


def hidden(name: str) -> bool:
    """Whether the driver keeps out of ``--help`` (one that makes nothing real). A driver
    whose options are registered apart is a real one, and is not imported to ask."""
    if name in _own(OPTIONS_GROUP):
        return False
    return bool(getattr(get(name), "hidden", False))


def lazy(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A driver package's module ``__getattr__``: each of ``names`` (name -> module) is
    imported when first read, so importing the package for its options stays cheap."""

    def attribute(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
