"""The ``openstack`` driver: servers on any OpenStack cloud through openstacksdk.

The driver's class is imported when first asked for, not with the package: its
options module is imported alone to build the CLI's flags (see ``flotte.drivers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotte.drivers import lazy
from flotte.drivers.openstack.options import OPTIONS

if TYPE_CHECKING:
    from flotte.drivers.openstack.driver import OpenStackDriver

__all__ = ["OPTIONS", "OpenStackDriver"]

__getattr__ = lazy(
    __name__,
    {
        "OpenStackDriver": "flotte.drivers.openstack.driver",
    },
)
