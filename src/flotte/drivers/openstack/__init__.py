"""The ``openstack`` driver: servers on any OpenStack cloud through openstacksdk."""

from flotte.drivers.openstack.driver import OpenStackDriver
from flotte.drivers.openstack.options import OPTIONS

__all__ = ["OPTIONS", "OpenStackDriver"]
