"""Helpers shared by the OpenStack e2e tests (a module of its own: not ``conftest``)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fixtures.cli_zygote import run_openstack
from fixtures.devcloud import QUIET_VERBS
from flotte.drivers.base import GroupSpec
from flotte.models import NodeSpec, Owner, Role

VENV_BIN = Path(sys.executable).parent
DEMO, ALT, ADMIN = "devcloud-demo", "devcloud-alt", "devcloud"
# Resources counted before and after each test that makes something: how openstacksdk
# lists each (the proxy and its method), and what names one (key pairs: their name).
KINDS = {
    "server": ("compute", "servers"),
    "port": ("network", "ports"),
    "floating ip": ("network", "ips"),
    "security group": ("network", "security_groups"),
    "key pair": ("compute", "keypairs"),
    "network": ("network", "networks"),
    "subnet": ("network", "subnets"),
    "router": ("network", "routers"),
    "server group": ("compute", "server_groups"),
}


def default_clouds_yaml() -> Path:
    root = os.environ.get("FLOTTE_DEVCLOUD_DIR")
    if root:
        return Path(root) / "clouds.yaml"
    from flotte.devcloud.layout import default_dir

    return default_dir() / "clouds.yaml"


@dataclass(frozen=True)
class Rule:
    """A security group rule as ``openstack security group rule list`` shows it."""

    id: str
    protocol: str | None
    ip_range: str | None  # "0.0.0.0/0" (or "::/0") where the rule has no remote prefix
    port_range: str  # "22:22"; "" for every port
    direction: str
    remote_group: str | None


def rules(conn: Any, group: str) -> list[Rule]:
    """The rules of security group ``group`` (name or ID), asked with openstacksdk and
    written as openstackclient writes them (its ``IP Range`` and ``Port Range``)."""
    sg = conn.network.find_security_group(group, ignore_missing=False)
    out = []
    for r in conn.network.security_group_rules(security_group_id=sg.id):
        low, high = r.port_range_min, r.port_range_max
        if r.protocol in ("icmp", "ipv6-icmp", "icmpv6", "1", "58"):
            ports = (f"type={low}" if low else "") + (f":code={high}" if high else "")
        elif low or high:
            ports = f"{low if low is not None else high}:{high if high is not None else low}"
        else:
            ports = ""
        prefix = r.remote_ip_prefix or {"IPv4": "0.0.0.0/0", "IPv6": "::/0"}.get(r.ether_type)
        out.append(Rule(r.id, r.protocol, prefix, ports, r.direction, r.remote_group_id))
    return out


@dataclass
class Cloud:
    """devcloud as the tests see it. What flotte made is read with openstacksdk in this
    process (a connection per cloud, made once): an ``openstack`` process per look cost
    2-4 s of CPU (its start, a password login). python-openstackclient (``osc``) stays
    for what a test does as an operator would."""

    clouds_yaml: Path
    _connections: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _ext_cidr: Any = field(default=None, repr=False, compare=False)

    def env(self, cloud: str = DEMO) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        env["OS_CLOUD"] = cloud
        return env

    def project(self, cloud: str) -> str:
        """The project a clouds.yaml entry logs in to (a test worker may have its own)."""
        import yaml

        data = yaml.safe_load(self.clouds_yaml.read_text())
        return str(data["clouds"][cloud]["auth"]["project_name"])

    def floating(self, address: str) -> bool:
        """Whether ``address`` is in ext-net's subnet (a floating IP devcloud gave)."""
        import ipaddress

        if self._ext_cidr is None:
            subnet = self.connection(ADMIN).network.find_subnet("ext-subnet", ignore_missing=False)
            self._ext_cidr = ipaddress.ip_network(subnet.cidr)
        return ipaddress.ip_address(address) in self._ext_cidr

    def osc(self, *args: str, cloud: str = DEMO, check: bool = True) -> Any:
        """Run one ``openstack`` command; JSON output parsed."""
        argv = [*args[0].split(), *args[1:]]
        verb = args[0].split()[-1] if " " in args[0] else (args[1] if len(args) > 1 else "")
        if "-f" not in args and verb not in QUIET_VERBS:
            argv += ["-f", "json"]
        done = run_openstack(argv, self.env(cloud), timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)}: {done.stderr.strip()}")
        out = done.stdout.strip()
        return json.loads(out) if out.startswith(("[", "{")) else out

    def connection(self, cloud: str = DEMO) -> Any:
        """An openstacksdk connection of this test process, made once per cloud."""
        if cloud not in self._connections:
            import openstack.config
            import openstack.connection

            config = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
            self._connections[cloud] = openstack.connection.Connection(
                config=config.get_one(cloud=cloud)
            )
        return self._connections[cloud]

    def server(self, server_id: str, cloud: str = DEMO) -> Any:
        """One server as ``cloud``'s project sees it (openstacksdk's ``Server``)."""
        return self.connection(cloud).compute.get_server(server_id)

    def servers(self, cloud: str = DEMO) -> list[Any]:
        """Every server ``cloud``'s project sees, with details."""
        return list(self.connection(cloud).compute.servers())

    def rules(self, group: str, cloud: str = DEMO) -> list[Rule]:
        return rules(self.connection(cloud), group)

    def close(self) -> None:
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def inventory(self, cloud: str = DEMO) -> dict[str, set[str]]:
        """IDs (names for key pairs) of every countable resource the project sees."""
        conn = self.connection(cloud)
        inv: dict[str, set[str]] = {}
        for kind, (proxy, lister) in KINDS.items():
            rows = getattr(getattr(conn, proxy), lister)()
            inv[kind] = {str(r.name if kind == "key pair" else r.id) for r in rows}
        return inv


def new_items(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}


def leaked(cloud: Cloud, before: dict[str, set[str]], project: str = DEMO) -> dict[str, set[str]]:
    """Resources that appeared since ``before`` and stay.

    Other sessions may use the same devcloud project at the same time; what they make
    and delete comes and goes, a leak stays. Look again a few times before calling it one.
    """
    found = new_items(before, cloud.inventory(project))
    for _ in range(3):
        if not found:
            break
        time.sleep(4)
        again = new_items(before, cloud.inventory(project))
        found = {k: v & again.get(k, set()) for k, v in found.items() if v & again.get(k, set())}
    return found


def reachable(clouds_yaml: Path, wait: float) -> bool:
    """True once devcloud's Keystone and Nova answer (another session may be restarting it)."""
    import urllib.request

    import yaml

    if not clouds_yaml.exists():
        return False
    entry = yaml.safe_load(clouds_yaml.read_text())["clouds"][DEMO]
    keystone = entry["auth"]["auth_url"]
    urls = [keystone, keystone.replace(":5000", ":8774").rsplit("/", 1)[0] + "/"]
    deadline = time.monotonic() + wait
    while True:
        try:
            for url in urls:
                urllib.request.urlopen(url, timeout=5).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(3)


def cluster_group(name: str, installation: str, size: int, **options: Any) -> GroupSpec:
    return GroupSpec(
        name=name,
        owner=Owner(cluster=name, installation=installation),
        options=options,
        roles=("manager", "worker"),
        size=size,
    )


def machine_group(name: str, installation: str, **options: Any) -> GroupSpec:
    return GroupSpec(
        name=name, owner=Owner(machine=name, installation=installation), options=options
    )


def node_specs(group: GroupSpec, managers: int = 1) -> list[NodeSpec]:
    if group.owner.machine:
        return [NodeSpec(group.name, Role.MACHINE, group.owner, "openstack")]
    return [
        NodeSpec(
            f"{group.name}-{i}",
            Role.MANAGER if i < managers else Role.WORKER,
            group.owner,
            "openstack",
        )
        for i in range(group.size)
    ]


def proxied_clouds_yaml(cloud: Cloud, tmp_path: Path, name: str, nova: Any, neutron: Any) -> Path:
    """A clouds.yaml whose compute and network endpoints go through the proxies."""
    data = yaml.safe_load(cloud.clouds_yaml.read_text())
    entry = dict(data["clouds"][DEMO])
    entry["compute_endpoint_override"] = f"{nova.url}/v2.1"
    entry["network_endpoint_override"] = f"{neutron.url}/"
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {**data["clouds"], name: entry}}))
    return path
