"""The ``ec2`` driver: EC2-API clouds (AWS, 3DS Outscale) through boto3.

The driver's class is imported when first asked for, not with the package: its
options module is imported alone to build the CLI's flags (see ``flotte.drivers``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flotte.drivers import lazy

if TYPE_CHECKING:
    from flotte.drivers.ec2.driver import EC2Driver

__all__ = ["EC2Driver"]

__getattr__ = lazy(
    __name__,
    {
        "EC2Driver": "flotte.drivers.ec2.driver",
    },
)
