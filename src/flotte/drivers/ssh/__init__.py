"""The ``ssh`` driver: existing servers become Docker hosts and cluster nodes.

The driver's class is imported when first asked for, not with the package: its
options module is imported alone to build the CLI's flags (see ``flotte.drivers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotte.drivers import lazy
from flotte.drivers.ssh.options import HostEntry, load_inventory, parse_host

if TYPE_CHECKING:
    from flotte.drivers.ssh.driver import SSHDriver

__all__ = ["HostEntry", "SSHDriver", "load_inventory", "parse_host"]

__getattr__ = lazy(
    __name__,
    {
        "SSHDriver": "flotte.drivers.ssh.driver",
    },
)
