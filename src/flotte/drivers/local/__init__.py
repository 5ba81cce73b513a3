"""The ``local`` driver: Docker-in-Docker nodes on this machine's Docker engine."""

from flotte.drivers.local.connection import local_client
from flotte.drivers.local.driver import LocalDriver

__all__ = ["LocalDriver", "local_client"]
