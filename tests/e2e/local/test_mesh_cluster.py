"""A cluster over two sites, on real WireGuard peers: the local driver puts one node
group on a network of its own (``--local-network``, no route to the cluster's network)
and every node on a shared "public" network (``--local-public-network``, its address
there plays the floating IP). flotte builds the mesh itself (wireguard-go and
wireguard-tools installed on the nodes by flotte, from the Debian mirror) and the
Swarm advertises and carries its data path on the mesh addresses.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from fixtures import container_exec
from fixtures.local import Flotte, docker_cli
from flotte.config import paths
from flotte.mesh import keys, topology
from flotte.models import NODE_KEY, OWNER_KEY

pytestmark = pytest.mark.docker

PROBE = "flotte-base:bookworm"  # Debian: bash's /dev/tcp and glibc name lookups


def node(flotte: Flotte, client: docker.DockerClient, name: str) -> Any:
    labels = [f"{OWNER_KEY}={flotte.installation}", f"{NODE_KEY}={name}"]
    (found,) = client.api.containers(filters={"label": labels})
    return client.containers.get(found["Id"])


def sh(container: Any, script: str, ok: bool = True) -> str:
    code, text = container_exec.run(container, script)
    if ok:
        assert code == 0, text
    return text


def advertised(flotte: Flotte, cluster: str) -> dict[str, str]:
    """Each swarm node's hostname and the address it advertises (docker node inspect)."""
    ids = docker_cli(flotte, cluster, "node", "ls", "-q").split()
    out = docker_cli(
        flotte, cluster, "node", "inspect", *ids, "--format", "{{.Description.Hostname}} "
        "{{.Status.State}} {{.Status.Addr}}",
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines()]
    assert all(state == "ready" for _, state, _ in rows), rows
    return {host: addr for host, _, addr in rows}


def mesh_address(container: Any) -> str:
    text = sh(container, f"ip -o -4 address show {topology.INTERFACE}")
    return text.split()[3].split("/")[0]


def test_two_sites_one_swarm_over_the_mesh(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path, hello_image: str
) -> None:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    public, far = f"flotte-test-pub-{tag}", f"flotte-test-far-{tag}"
    spec = {
        "apiVersion": "flotte/v1",
        "kind": "Cluster",
        "name": "mc",
        "driver": "local",
        "options": {"local_public_network": public},
        "nodegroups": [
            {"name": "default-master", "role": "master", "node_count": 1},
            {"name": "default-worker", "role": "worker", "node_count": 1},
            {
                "name": "far",
                "role": "worker",
                "node_count": 2,
                "options": {"local_network": far, "local_public_network": public},
            },
        ],
    }
    path = tmp_path / "mc.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert "CREATE_COMPLETE" in flotte("apply", "-f", str(path), timeout=600).stdout
    created = time.monotonic() - started

    # One swarm; every node advertises its mesh address, not its private one.
    names = ["mc-master-0", "mc-node-0", "mc-far-0", "mc-far-1"]
    containers = {n: node(flotte, docker_engine, n) for n in names}
    addrs = advertised(flotte, "mc")
    assert sorted(addrs) == sorted(names)
    for n, c in containers.items():
        assert addrs[n] == mesh_address(c), (n, addrs)
        assert ipaddress.ip_address(addrs[n]) in topology.MESH_NETWORK

    # The two sites share no route: a far node cannot reach the master's private address.
    show = json.loads(flotte("cluster", "show", "mc", "-f", "json").stdout)
    private = {n["name"]: n["address"] for n in show["nodes"]}
    blocked = sh(
        containers["mc-far-0"],
        f"timeout 3 bash -c '</dev/tcp/{private['mc-master-0']}/2376' && echo open || echo closed",
    )
    assert blocked.strip().endswith("closed"), blocked
    # Keys: 0600 files under the installation's secrets, one per node; each node's
    # interface holds the key wg derives the same public key from.
    store = keys.KeyStore(paths(flotte.home).secrets / "mesh" / "mc")
    assert store.nodes() == sorted(names)
    assert {store.path(n).stat().st_mode & 0o777 for n in names} == {0o600}
    master = containers["mc-master-0"]
    wg_key = sh(master, f"wg show {topology.INTERFACE} public-key").strip()
    assert wg_key == store.public("mc-master-0")
    peers = set(sh(master, f"wg show {topology.INTERFACE} peers").split())
    assert peers == {store.public(n) for n in names if n != "mc-master-0"}

    # A service over both sites: a client on the overlay network, on the master's
    # site, reaches by service name every replica, those on the far site included.
    flotte("cluster", "load-image", "mc", hello_image, timeout=600)
    docker_cli(flotte, "mc", "network", "create", "-d", "overlay", "--attachable", "app")
    docker_cli(
        flotte, "mc", "service", "create", "--detach", "--name", "hello", "--replicas", "4",
        "--network", "app", "--endpoint-mode", "dnsrr", "--no-resolve-image",
        "--hostname", "{{.Node.Hostname}}", hello_image,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        tasks = docker_cli(
            flotte, "mc", "service", "ps", "hello", "--filter", "desired-state=running",
            "--format", "{{.Node}} {{.CurrentState}}",
        )  # fmt: skip
        running = {line.split()[0] for line in tasks.splitlines() if " Running" in line}
        if running == set(names):
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(1)
    # the client image goes to the manager only (the context's engine)
    save = subprocess.Popen(["docker", "save", PROBE], stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "--context", "flotte-mc", "load", "-q"],
        stdin=save.stdout,
        env=flotte.env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert save.wait(60) == 0
    fetch = (
        "get() { exec 3<>/dev/tcp/$1/80 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 "
        "&& tail -n 1 <&3; exec 3>&-; }; "
        "for ip in $(getent ahostsv4 tasks.hello | cut -d' ' -f1 | sort -u); do get $ip; done; "
        "echo by-name: $(get hello)"
    )
    answers = docker_cli(
        flotte, "mc", "run", "--rm", "--network", "app", "--hostname", "client",
        PROBE, "bash", "-c", fetch,
    )  # fmt: skip
    lines = answers.strip().splitlines()
    assert sorted(lines[:-1]) == sorted(f"hello from {n}" for n in names), answers
    assert lines[-1].startswith("by-name: hello from mc-"), answers

    # Resize down: the far node that goes leaves every other node's peers, its key goes.
    doomed = "mc-far-1"
    gone_key = store.public(doomed)
    flotte("cluster", "resize", "mc", "--nodegroup", "far", "--node-count", "1", timeout=300)
    assert sorted(advertised(flotte, "mc")) == sorted(n for n in names if n != doomed)
    assert not store.path(doomed).exists()
    for n in names:
        if n != doomed:
            peers = set(sh(containers[n], f"wg show {topology.INTERFACE} peers").split())
            assert gone_key not in peers and len(peers) == 2, (n, peers)

    # regenerate-certs rotates the node's mesh key too: every peer gets the new one and
    # the node (its container restarted with new certificates) is back in the swarm.
    far0 = node(flotte, docker_engine, "mc-far-0")
    old_key = store.public("mc-far-0")
    flotte("machine", "regenerate-certs", "mc-far-0", "-f", timeout=300)
    new_key = store.public("mc-far-0")
    assert new_key != old_key
    assert new_key in sh(master, f"wg show {topology.INTERFACE} peers").split()
    deadline = time.monotonic() + 90
    while True:
        try:
            back = advertised(flotte, "mc")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                seen = [
                    docker_cli(flotte, "mc", "node", "ls"),
                    sh(master, f"wg show {topology.INTERFACE}", ok=False),
                    sh(far0, f"wg show {topology.INTERFACE}; ip -o a", ok=False),
                    sh(far0, "docker info 2>&1 | grep -A8 Swarm", ok=False),
                ]
                raise AssertionError("mc-far-0 not back Ready:\n" + "\n".join(seen)) from None
            time.sleep(1)
    assert back["mc-far-0"] == addrs["mc-far-0"]

    # Heal: a far node that died is replaced; the replacement is on the mesh, the dead
    # one's peer and key are gone.
    far0.remove(force=True, v=True)
    healed = flotte("cluster", "heal", "mc", timeout=300).stdout
    assert "Replaced mc-far-0" in healed, healed
    now = advertised(flotte, "mc")
    (new_far,) = set(now) - {"mc-master-0", "mc-node-0"}
    assert now[new_far] == mesh_address(node(flotte, docker_engine, new_far))
    assert store.nodes() == sorted(["mc-master-0", "mc-node-0", new_far])
    peers = set(sh(master, f"wg show {topology.INTERFACE} peers").split())
    assert peers == {store.public("mc-node-0"), store.public(new_far)}

    # Delete: nothing left, the networks flotte made included; no key file.
    flotte("cluster", "delete", "mc", timeout=300)
    assert flotte.owned(docker_engine, cluster="mc") == []
    assert not docker_engine.networks.list(names=[public, far])
    assert not store.directory.exists()
    took = time.monotonic() - started
    print(f"two-site cluster of 4 Ready in {created:.1f} s; whole test {took:.1f} s")


def test_sites_that_cannot_reach_each_other_are_refused_and_rolled_back(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    """Two sites and no public address on either: one line, nothing left."""
    far = f"flotte-test-far-{uuid.uuid4().hex[:6]}"
    spec = {
        "apiVersion": "flotte/v1",
        "kind": "Cluster",
        "name": "closed",
        "driver": "local",
        "nodegroups": [
            {"name": "default-master", "role": "master", "node_count": 1},
            {"name": "far", "role": "worker", "node_count": 1, "options": {"local_network": far}},
        ],
    }
    path = tmp_path / "closed.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = flotte("apply", "-f", str(path), check=False, timeout=300)
    assert res.returncode != 0
    assert "cannot reach each other" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert flotte.owned(docker_engine, cluster="closed") == []
    assert not (paths(flotte.home).secrets / "mesh" / "closed").exists()


def test_a_cluster_made_on_one_site_is_not_moved_onto_the_mesh(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    """Its nodes joined on their private addresses: a group on another site is refused
    (one line, nothing changed), growing on its own site works as before."""
    far = f"flotte-test-far-{uuid.uuid4().hex[:6]}"
    pub = f"{far}-pub"
    flotte("cluster", "create", "one", "--driver", "local", "--node-count", "0")
    before = json.loads(flotte("cluster", "show", "one", "-f", "json").stdout)
    # the far site has public addresses: the sites could reach each other (else that
    # is what is refused first), but the cluster's nodes are not on the mesh
    res = flotte(
        "cluster", "nodegroup", "create", "one", "far", "--node-count", "1",
        "--local-network", far, "--local-public-network", pub, check=False,
    )  # fmt: skip
    assert res.returncode != 0 and "joined the swarm on their private addresses" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    after = json.loads(flotte("cluster", "show", "one", "-f", "json").stdout)
    assert after["nodegroups"] == before["nodegroups"] and after["status"] == before["status"]
    assert not docker_engine.networks.list(names=[far]) + docker_engine.networks.list(names=[pub])
    flotte("cluster", "delete", "one")
