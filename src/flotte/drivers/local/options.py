"""Flags of the local driver and their checks."""

from __future__ import annotations

from typing import Any

from flotte.drivers.base import DriverOption
from flotte.errors import UsageError

PRIVILEGED_CHOICES = ("auto", "yes", "no")

OPTIONS: tuple[DriverOption, ...] = (
    DriverOption(
        "local-image",
        "Node image to run (default: built on first use)",
        envvar="FLOTTE_LOCAL_IMAGE",
    ),
    DriverOption(
        "local-privileged",
        "auto, yes or no: run nodes with --privileged (auto detects what the engine allows)",
        default="auto",
    ),
    DriverOption(
        "local-network",
        "Bridge network of the node group's nodes instead of the cluster's own (made, and"
        " removed with the cluster, when missing); a group on another network is another"
        " site: the cluster gets the WireGuard mesh",
    ),
    DriverOption(
        "local-public-network",
        "A second network each node joins; its address there is the node's public address"
        " (what other sites reach it on, like a floating IP)",
    ),
)


def privileged_choice(value: Any) -> str:
    """``--local-privileged`` as one of auto/yes/no, or UsageError."""
    choice = str(value if value not in (None, "") else "auto")
    if choice not in PRIVILEGED_CHOICES:
        raise UsageError(f"--local-privileged {choice!r}: use auto, yes or no")
    return choice
