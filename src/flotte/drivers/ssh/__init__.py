"""The ``ssh`` driver: existing servers become Docker hosts and cluster nodes."""

from flotte.drivers.ssh.driver import SSHDriver
from flotte.drivers.ssh.options import HostEntry, load_inventory, parse_host

__all__ = ["HostEntry", "SSHDriver", "load_inventory", "parse_host"]
