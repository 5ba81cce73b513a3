"""Overflow across providers (issue 15): devcloud full, the rest on SSH hosts, one Swarm.

devcloud runs Docker-backed servers; the test lowers the demo project's instance quota
so that only 3 more servers fit, and starts two sshd hosts (tests/fixtures/sshd_hosts)
that it gives an address on devcloud's external network (they play public servers:
the address is reserved in Neutron so no floating IP takes it). A cluster of 1 manager
+ 4 workers overflowing devcloud -> ssh gets 3 servers and 2 SSH hosts, meshed with
WireGuard by flotte (the sites share no private network); a 5-replica service on an
overlay network spans both sites and its replicas answer by service name. The
security group opens only the WireGuard port to the SSH hosts. Shrinking to 2 workers
removes the SSH workers first; delete leaves nothing on either side (openstack CLI
and the hosts checked). The quota is restored in any case.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from fixtures import sshd_hosts
from fixtures.devcloud import DevCloud
from fixtures.devcloud import flotte as devcloud_flotte
from flotte.devcloud.agent import label_value
from flotte.devcloud.networks import DockerNetworks
from flotte.mesh import scripts, topology

pytestmark = [pytest.mark.slow, pytest.mark.docker]
HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello"
PROBE = "flotte-base:bookworm"  # Debian: bash's /dev/tcp and getent


@contextlib.contextmanager
def instance_quota(dc: DevCloud, room: int) -> Iterator[None]:
    """The demo project's instance quota set to what it uses plus ``room``; restored."""
    project = dc.clouds()[dc.demo_cloud]["auth"]["project_name"]
    rows = dc.openstack("quota", "show", "--usage", project, cloud=dc.admin_cloud)
    row = next(r for r in rows if r["Resource"] == "instances")
    limit, used = int(row["Limit"]), int(row["In Use"])
    dc.openstack("quota", "set", "--instances", str(used + room), project, cloud=dc.admin_cloud)
    try:
        yield
    finally:
        dc.openstack("quota", "set", "--instances", str(limit), project, cloud=dc.admin_cloud)


@contextlib.contextmanager
def public_hosts(dc: DevCloud, tmp: Path, name: str, count: int) -> Iterator[list[Any]]:
    """``count`` sshd hosts, each with an address on devcloud's external network
    (reserved by a Neutron port, so no floating IP takes it)."""
    admin = dc.connect(dc.admin_cloud)
    client = docker.from_env()
    ports: list[Any] = []
    try:
        ext_net = admin.network.find_network("ext-net", ignore_missing=False)
        # devcloud's own code makes its external bridge, as its agent would
        ext = DockerNetworks(admin, client, label_value(dc.root))._ext_network()
        with sshd_hosts.lab(tmp) as lab:
            hosts = []
            for i in range(count):
                port = admin.network.create_port(
                    network_id=ext_net.id, name=f"{name}-host{i}", description="flotte test host"
                )
                ports.append(port)
                host = lab.start("docker", hostname=f"{name}-rack{i}")
                ip = port.fixed_ips[0]["ip_address"]
                ext.connect(host.container, ipv4_address=ip)
                host.ip = ip  # what flotte is told, and all it uses
                hosts.append(host)
            yield [lab, hosts]
    finally:
        for port in ports:
            with contextlib.suppress(Exception):
                admin.network.delete_port(port)
        admin.close()
        client.close()


def test_overflow_devcloud_to_ssh(devcloud_docker: DevCloud, tmp_path: Path) -> None:
    dc = devcloud_docker
    name = f"ov{uuid.uuid4().hex[:5]}"
    env = dict(dc.env, FLOTTE_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"))

    def flotte(*args: str) -> subprocess.CompletedProcess[str]:
        return devcloud_flotte(*args, timeout=900, env=env)

    def docker_cli(*args: str, timeout: float = 120) -> str:
        return subprocess.run(
            ["docker", "--context", f"flotte-{name}", *args],
            env=env, capture_output=True, text=True, timeout=timeout, check=True,
        ).stdout  # fmt: skip

    def swarm() -> dict[str, str]:
        out = docker_cli("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
        return dict(line.split() for line in out.splitlines())

    def servers() -> list[str]:
        found = dc.openstack("server", "list", "--name", f"^{name}-", "-c", "Name")
        return sorted(s["Name"] for s in found)

    def mesh_sources() -> set[str]:
        rules = dc.openstack("security", "group", "rule", "list", f"flotte-{name}")
        return {
            str(r["IP Range"])
            for r in rules
            if r["IP Protocol"] == "udp" and r["Port Range"] == "51820:51820"
        }

    started = time.monotonic()
    with (
        instance_quota(dc, 3),
        public_hosts(dc, tmp_path, name, 2) as (lab, hosts),
    ):
        spec = {
            "apiVersion": "flotte/v1",
            "kind": "Cluster",
            "name": name,
            "driver": "openstack",
            "options": {
                "openstack_cloud": dc.demo_cloud,
                "openstack_flavor_id": dc.flavor_id,
                "openstack_net_name": dc.network,
                "openstack_floatingip_pool": dc.floating_pool,
                "openstack_image_name": dc.image,
                "openstack_ssh_user": dc.ssh_user,
            },
            # managers and workers on devcloud, then the rack's hosts when it is full
            "nodegroups": [
                {"name": "default-master", "role": "master", "node_count": 1},
                {"name": "default-worker", "role": "worker", "node_count": 0},
                {"name": "rack", "role": "worker", "node_count": 0, "driver": "ssh",
                 "hosts": [h.ip for h in hosts],
                 "options": {"ssh_user": "root", "ssh_key": str(lab.key)}},
            ],
            "overflow": {"nodegroups": ["default-worker", "rack"], "node_count": 4},
        }  # fmt: skip
        path = tmp_path / "cluster.yaml"
        path.write_text(yaml.safe_dump(spec))
        try:
            flotte("apply", "-f", str(path))
            ready_s = time.monotonic() - started
            nodes = swarm()
            assert len(nodes) == 5 and set(nodes.values()) == {"Ready"}, nodes
            # 3 servers on devcloud (its quota), 2 workers on the SSH hosts
            assert len(servers()) == 3, servers()
            rack = {n for n in nodes if "-rack" in n}
            assert len(rack) == 2, nodes
            show = json.loads(flotte("cluster", "show", name, "-f", "json").stdout)
            groups = sorted(n["nodegroup"] for n in show["nodes"])
            assert groups.count("rack") == 2 and groups.count("default-worker") == 2, show

            # Only the WireGuard port is opened to the SSH hosts, and only to them.
            host_ips = {f"{h.ip}/32" for h in hosts}
            assert host_ips <= mesh_sources()
            rules = dc.openstack("security", "group", "rule", "list", f"flotte-{name}")
            for r in rules:
                if str(r["IP Range"]) in host_ips:
                    assert (r["IP Protocol"], r["Port Range"]) == ("udp", "51820:51820"), r
                if r["Port Range"] in ("2377:2377", "7946:7946", "4789:4789"):
                    assert r["Remote Security Group"], r  # Swarm: members of the group only

            # A 5-replica service on an overlay network over both sites, answering by name.
            client = docker.from_env()
            client.images.build(path=str(HELLO), tag="flotte-hello:1", rm=True)
            client.close()
            flotte("cluster", "load-image", name, "flotte-hello:1")
            docker_cli(
                "network", "create", "-d", "overlay", "--attachable",
                "--opt", "com.docker.network.driver.mtu=1370", "app",
            )  # fmt: skip
            docker_cli(
                "service", "create", "--detach", "--name", "hello", "--replicas", "5",
                "--replicas-max-per-node", "1", "--network", "app", "--endpoint-mode",
                "dnsrr", "--no-resolve-image", "--hostname", "{{.Node.Hostname}}",
                "flotte-hello:1",
            )  # fmt: skip
            # the client image too: every replica, wherever it is, answers it
            flotte("cluster", "load-image", name, PROBE)
            deadline = time.monotonic() + 180
            while "5/5" not in docker_cli("service", "ls", "--format", "{{.Replicas}}"):
                assert time.monotonic() < deadline, docker_cli("service", "ps", "hello")
                time.sleep(2)
            placed = docker_cli("service", "ps", "hello", "--format", "{{.Node}}").split()
            assert sorted(placed) == sorted(nodes), placed  # one replica per node, both sites
            fetch = (
                "get() { exec 3<>/dev/tcp/$1/80 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 "
                "&& tail -n 1 <&3; exec 3>&-; }; "
                "for ip in $(getent ahostsv4 tasks.hello | cut -d' ' -f1 | sort -u); do get $ip;"
                " done; echo by-name: $(get hello)"
            )
            answers = docker_cli(
                "run", "--rm", "--network", "app", PROBE, "bash", "-c", fetch, timeout=180
            ).strip().splitlines()  # fmt: skip
            assert sorted(answers[:-1]) == sorted(f"hello from {n}" for n in nodes), answers
            assert answers[-1].startswith("by-name: hello from "), answers

            # Shrink to 2 workers: the SSH workers (last overflow group) go first.
            flotte("cluster", "resize", name, "--node-count", "2")
            nodes = swarm()
            assert len(nodes) == 3 and not {n for n in nodes if "-rack" in n}, nodes
            assert len(servers()) == 3
            assert not host_ips & mesh_sources()  # their addresses left the group
            for h in hosts:
                assert topology.INTERFACE not in h.sh("ip -o link show"), h.name
        finally:
            subprocess.run(
                [sys.executable, "-m", "flotte.cli.main", "cluster", "delete", name],
                env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
        # Nothing left on either side.
        assert servers() == []
        assert [p for p in dc.openstack("port", "list") if name in str(p)] == []
        assert [f for f in dc.openstack("floating", "ip", "list") if name in str(f)] == []
        assert [g for g in dc.openstack("security", "group", "list") if name in str(g)] == []
        for h in hosts:
            left = h.sh(
                f"ip -o link show | grep -c {topology.INTERFACE} || true; "
                f"ls {scripts.CONF} 2>/dev/null || true; "
                f"iptables -S {scripts.CHAIN} 2>/dev/null || true; "
                "docker info --format '{{.Swarm.LocalNodeState}}'"
            ).split()
            assert left == ["0", "inactive"], (h.name, left)
    print(f"two-site 5-node cluster Ready in {ready_s:.0f} s")
