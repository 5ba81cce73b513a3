"""Moving in from docker-machine: its machines read into values flotte records.

* :mod:`flotte.migrate.store`: the docker-machine directory and each ``config.json``;
* :mod:`flotte.migrate.drivers`: docker-machine's drivers mapped onto flotte's;
* :mod:`flotte.migrate.dockermachine`: ``read_store`` and the values it returns.
"""

from __future__ import annotations

from flotte.migrate.dockermachine import DockerMachine, Skipped, StoreRead, read_store
from flotte.migrate.store import default_store

__all__ = ["DockerMachine", "Skipped", "StoreRead", "default_store", "read_store"]
