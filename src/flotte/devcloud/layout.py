"""Where devcloud keeps its files, and which processes and ports make it up (as data)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flotte.config import paths

HOST = "127.0.0.1"
REGION = "RegionOne"

# API name -> TCP port on 127.0.0.1 (the ports a stock OpenStack uses, so URLs look
# familiar; `up` checks each is free before it starts anything).
API_PORTS: dict[str, int] = {
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "nova": 8774,
    "neutron": 9696,
}
# Ironic (`up --ironic`): API and conductor in one process, on Ironic's stock port.
IRONIC_PORT = 6385
RABBIT_PORT = 5672
RABBIT_DIST_PORT = 25672
EPMD_PORT = 4369

# gunicorn processes per API, each with API_THREADS threads (gthread). Requests wait
# on I/O more than they compute: Nova waits on Neutron, Glance and the database, Neutron
# on the database. With one request per process (sync workers, two each) 200 parallel
# boots queued ~300 requests and Nova's workers, blocked on their calls to Neutron, hit
# gunicorn's timeout. Every API here runs in native threading mode (nova/neutron's WSGI
# modules select oslo.service's threading backend; none is eventlet-patched), so
# threads are safe; more processes would not help: there are two cores, and each
# process costs 100-230 MB. Keystone is one process: its in-process cache
# (render.keystone_conf) must be one cache, or a change made through one worker stays
# stale in the other.
API_WORKERS: dict[str, int] = {
    "keystone": 1,
    "glance": 1,
    "placement": 1,
    "nova": 2,
    "neutron": 2,
}
API_THREADS: dict[str, int] = {
    "keystone": 4,
    "glance": 4,
    "placement": 4,
    "nova": 8,
    "neutron": 8,
}

# Keystone catalog: service name -> (type, path after host:port).
CATALOG: dict[str, tuple[str, str]] = {
    "glance": ("image", ""),
    "placement": ("placement", ""),
    "nova": ("compute", "/v2.1"),
    "neutron": ("network", ""),
}

# Databases in MariaDB, one per service (nova has three: api, cell0, cell1).
DATABASES = (
    "keystone",
    "glance",
    "placement",
    "nova_api",
    "nova_cell0",
    "nova",
    "neutron",
    "ironic",
)

# Every process devcloud runs, in start order; `down` stops them in reverse.
PROCESSES = (
    "mariadb",
    "epmd",
    "rabbitmq",
    "keystone",
    "glance",
    "placement",
    "nova-api",
    "neutron",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute",
)

# Bare metal (`up --ironic`), started after the others: Ironic, then a second
# nova-compute whose driver is Nova's ironic driver (host IRONIC_HOST).
IRONIC_PROCESSES = ("ironic", "nova-compute-ironic")
IRONIC_HOST = "devcloud-ironic"

CLOUD_ADMIN = "devcloud"
CLOUD_DEMO = "devcloud-demo"
CLOUD_ALT = "devcloud-alt"


def default_dir() -> Path:
    """``FLOTTE_DEVCLOUD_DIR`` if set, else ``<flotte data>/devcloud``."""
    env = os.environ.get("FLOTTE_DEVCLOUD_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (paths().data / "devcloud").resolve()


def default_clouds_yaml() -> Path:
    """The user's clouds.yaml, where openstacksdk looks without any variable set."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "openstack" / "clouds.yaml"


@dataclass(frozen=True)
class Layout:
    """The directories and files of one devcloud."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def mysql_data(self) -> Path:
        return self.root / "mysql"

    @property
    def mysql_socket(self) -> Path:
        return self.run / "mysqld.sock"

    @property
    def rabbit_dir(self) -> Path:
        return self.root / "rabbitmq"

    @property
    def state_dir(self) -> Path:
        # Nova/Glance/Keystone keys and images; wiped with the databases.
        return self.root / "state"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    def log(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def pidfile(self, process: str) -> Path:
        return self.run / f"{process}.pid"

    def ensure(self) -> None:
        for d in (self.root, self.etc, self.logs, self.run, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
