"""A node whose earlier join is stuck (pending, or failed) joins when asked again.

On a loaded machine the engine's own 20 s join timeout passes while the join goes on
in the background ("pending"); a re-run then found the node "already part of a swarm"
and failed the create (seen with a 50-node local cluster). The test makes the stuck
join for real: a worker of a real 2-node swarm leaves, then is asked to join an address
of the cluster's own network that nobody holds, so its engine stays pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import docker
import pytest

from fixtures.local import Flotte
from flotte.coe.swarm import Swarm, dig
from flotte.models import Endpoint
from flotte.pki import CertificateAuthority

pytestmark = pytest.mark.docker


def _endpoint(flotte: Flotte, name: str) -> Endpoint:
    url = flotte("machine", "url", name).stdout.strip()
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    return Endpoint(host, docker_port=int(port))


@pytest.fixture
def stuck(flotte: Flotte) -> Iterator[tuple[CertificateAuthority, Endpoint, Endpoint]]:
    flotte("cluster", "create", "stuck", "--driver", "local", "--node-count", "1")
    ca = CertificateAuthority(flotte.home / "secrets" / "certs").ensure()
    try:
        yield ca, _endpoint(flotte, "stuck-master-0"), _endpoint(flotte, "stuck-node-0")
    finally:
        flotte("cluster", "delete", "stuck", timeout=600, check=False)


def _nowhere(engine: docker.DockerClient, host: str) -> str:
    """An address of the network ``host`` is on that no container holds."""
    for net in engine.networks.list():
        for conf in net.attrs.get("IPAM", {}).get("Config") or []:
            subnet = ip_network(conf.get("Subnet", "0.0.0.0/32"))
            if ip_address(host) in subnet:
                return str(subnet.broadcast_address - 3)
    raise AssertionError(f"no Docker network holds {host}")


def test_a_join_stuck_pending_is_started_over(
    stuck: tuple[CertificateAuthority, Endpoint, Endpoint],
    docker_engine: docker.DockerClient,
) -> None:
    ca, manager, worker = stuck
    client = Swarm(ca)
    with client.connected(manager) as mcli:
        attrs = mcli.api.inspect_swarm()
        token, cluster_id = attrs["JoinTokens"]["Worker"], attrs["ID"]
        old = [n["ID"] for n in mcli.api.nodes() if not dig(n, "ManagerStatus")]
    with client.connected(worker) as wcli:
        wcli.swarm.leave(force=True)
        assert dig(wcli.info(), "Swarm", "LocalNodeState") == "inactive"
        # an address of the cluster's network that no container holds: no answer at all
        nowhere = _nowhere(docker_engine, worker.host)
        with pytest.raises(docker.errors.APIError, match=r"(?i)timeout"):
            wcli.swarm.join(
                remote_addrs=[f"{nowhere}:2377"], join_token=token, advertise_addr=worker.host
            )
        assert dig(wcli.info(), "Swarm", "LocalNodeState") == "pending"
    with client.connected(manager) as mcli:
        for node_id in old:  # the worker's record from before it left
            mcli.api.remove_node(node_id, force=True)

    asyncio.run(client.join(worker, worker.host, [manager.host], token, cluster_id, pending_wait=2))

    with client.connected(worker) as wcli:
        swarm = wcli.info()["Swarm"]
        assert swarm["LocalNodeState"] == "active"
    listed = asyncio.run(client.wait_ready(manager, {"stuck-node-0"}, 60))
    workers = [v for v in listed if v["role"] == "worker"]
    # one record, the worker's own, Ready: no Down twin
    assert [(v["id"], v["state"]) for v in workers] == [(swarm["NodeID"], "ready")], listed


def test_a_join_that_completed_meanwhile_is_success(
    stuck: tuple[CertificateAuthority, Endpoint, Endpoint],
) -> None:
    ca, manager, worker = stuck
    client = Swarm(ca)
    with client.connected(manager) as mcli:
        attrs = mcli.api.inspect_swarm()
    # already a member of this swarm: asking again changes nothing
    asyncio.run(
        client.join(worker, worker.host, [manager.host], attrs["JoinTokens"]["Worker"], attrs["ID"])
    )
    listed = asyncio.run(client.nodes(manager))
    assert sorted((v["hostname"], v["state"]) for v in listed) == [
        ("stuck-master-0", "ready"),
        ("stuck-node-0", "ready"),
    ]
