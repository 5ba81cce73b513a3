"""The bridge network a group's nodes share: one per cluster, one per installation for
lone machines (so two FLOTTE_HOMEs never share, or delete, each other's)."""

from __future__ import annotations

import contextlib
from typing import Any

from flotte.drivers.base import GroupSpec
from flotte.drivers.local import names
from flotte.drivers.local.connection import Engine
from flotte.drivers.local.names import MACHINES_NETWORK
from flotte.errors import DriverError

__all__ = ["MACHINES_NETWORK", "SHARED_KEY", "ensure_network", "network_name", "remove_network"]

PROBE = "-subnet-"  # the probe network's name: the network's, this, a random suffix
SHARED_KEY = "flotte:shared"  # label of the lone machines' network (not an owner mark)


def network_name(group: GroupSpec, installation: str) -> str:
    if "cluster" in group.roles or group.owner.cluster:
        return names.cluster_network(group.name, installation)
    return names.machines_network(installation)


def ensure_network(engine: Engine, name: str, labels: dict[str, str]) -> str:
    """The network's ID, made when missing (blocking: run it through ``engine.call``).

    It is made with a subnet of its own, the one Docker would pick: Docker keeps a
    container's address across a restart only on such a network (``Nodes.start``), and
    without that two nodes restarted together can swap addresses, which leaves a swarm
    worker calling itself its manager."""
    import docker.errors

    client = engine.docker
    listed = client.networks.list(names=[name])  # Docker's filter: names that contain it
    for net in listed:
        if net.name == name:
            return str(net.id)
    _remove_probes(listed, name)  # a run killed while it probed: before making another
    for _ in range(5):
        try:
            net = client.networks.create(
                name, driver="bridge", labels=labels, ipam=_own_subnet(engine, name, labels)
            )
        except docker.errors.APIError as err:
            if "already exists" in str(err):
                return str(client.networks.get(name).id)
            if "overlaps" in str(err):
                continue  # another process took that subnet meanwhile: ask again
            raise DriverError(f"cannot create network {name}: {err.explanation}") from err
        return str(net.id)
    raise DriverError(
        f"cannot create network {name}: the subnets Docker offered were taken by other "
        "networks made at the same time; re-run"
    )


def _own_subnet(engine: Engine, name: str, labels: dict[str, str]) -> Any:
    """The subnet and gateway Docker's own pools give a new network, as a user-set IPAM
    config. Found by making a probe network (with the owner's labels, so a kill here
    leaves nothing a sweep does not find) and removing it."""
    import uuid

    import docker.types

    # a name of its own: two processes making the same network probe at the same time
    probe = engine.docker.networks.create(
        f"{name}{PROBE}{uuid.uuid4().hex[:6]}", driver="bridge", labels=labels
    )
    try:
        configs = probe.attrs.get("IPAM", {}).get("Config") or []
    finally:
        _remove_probes([probe], name)
    if not configs or not configs[0].get("Subnet"):
        return None  # Docker said nothing of it: let it choose (the address may move)
    config = configs[0]
    pool = docker.types.IPAMPool(subnet=config["Subnet"], gateway=config.get("Gateway"))
    return docker.types.IPAMConfig(pool_configs=[pool])


def _remove_probes(networks: list[Any], name: str) -> None:
    """Remove the probe networks of network ``name`` among ``networks`` (one another
    process is using may go too: it only reads the probe's subnet, before removing it)."""
    import docker.errors

    for net in networks:
        if net.name.startswith(f"{name}{PROBE}"):
            with contextlib.suppress(docker.errors.NotFound):
                net.remove()


def remove_network(engine: Engine, name: str) -> None:
    """Remove the network unless other nodes still use it (blocking), and any probe a
    killed run left of it."""
    import docker.errors

    listed = engine.docker.networks.list(names=[name])
    _remove_probes(listed, name)
    for net in listed:
        if net.name != name:
            continue
        net.reload()
        if net.attrs.get("Containers"):
            return  # other machines still use the shared network
        try:
            net.remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as err:
            if "active endpoints" not in str(err):
                raise
