"""The ``local`` driver: Docker-in-Docker nodes on this machine's Docker engine.

The driver's class is imported when first asked for, not with the package: its
options module is imported alone to build the CLI's flags (see ``flotte.drivers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotte.drivers import lazy

if TYPE_CHECKING:
    from flotte.drivers.local.connection import local_client
    from flotte.drivers.local.driver import LocalDriver

__all__ = ["LocalDriver", "local_client"]

__getattr__ = lazy(
    __name__,
    {
        "LocalDriver": "flotte.drivers.local.driver",
        "local_client": "flotte.drivers.local.connection",
    },
)
