"""One node on OpenStack: its port, floating IP and server, made and unmade idempotently.

The port is made first, by flotte, with the owner marker and the group's security
groups (with the ports of the nodes created beside it, in one request:
:mod:`.bulk_ports`). That lets the floating IP be allocated *for that port* in one
request: no listing of free pool addresses and no picking one, the race docker-machine
had when several hosts were created at once. The allocation goes beside the boot, and
into the account's queue of calls just ahead of it: started as a task alone, every
node's address queued behind every node's boot, and the addresses were the create's
tail (100 nodes on devcloud: boots sent over 9-100 s, addresses over 74-165 s; the
create took 175 s against 154 s with them side by side, docs/perf). Nor does flotte
wait for the floating IP to become ACTIVE: without an L3 agent (devcloud, some small
clouds) it never does although the address is routed.

Deleting goes the other way: floating IP and server together, wait for the server to
be gone, then the port (Nova keeps ports it did not make).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotte.drivers.openstack import rest
from flotte.drivers.openstack.bulk_ports import create_port
from flotte.drivers.openstack.connection import RETRY_READ, Provider, status_of, translate
from flotte.drivers.openstack.create_once import create_once
from flotte.drivers.openstack.inventory import (
    Inventory,
    find_fip,
    find_port,
    find_server,
    ports_of,
    servers_of,
)
from flotte.drivers.openstack.resources import neutron_attrs
from flotte.drivers.openstack.wait import (
    ServerWatcher,
    awaited_with,
    booted,
    fault_message,
    gone,
)
from flotte.errors import DriverError, FlotteError
from flotte.models import NodeState, Owner

log = logging.getLogger(__name__)


@dataclass
class BootSpec:
    """Everything one server needs, resolved to IDs."""

    name: str
    owner: Owner
    marks: dict[str, str]  # the node's owner marks (NodeSpec.tags()): server metadata
    flavor_id: str
    image_id: str
    network_id: str
    security_group_ids: list[str]
    subnet_id: str | None = None  # the port's subnet, on a network the group made
    pool_id: str | None = None
    keypair: str | None = None
    user_data: bytes | None = None
    config_drive: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    server_group_id: str | None = None
    volume_size: int = 0
    ip_version: int = 4
    timeout: float = 200.0


def fixed_ip(port: Any, version: int = 4) -> str:
    for entry in port.fixed_ips or []:
        address = str(entry.get("ip_address", ""))
        if (":" in address) == (version == 6):
            return address
    return str((port.fixed_ips or [{}])[0].get("ip_address", ""))


async def _until_active(p: Provider, boot: BootSpec, server: Any) -> Any:
    if server.status == "ACTIVE":
        return server
    return await ServerWatcher.of(p).wait(
        server.id,
        boot.name,
        booted(boot.name),
        timeout=boot.timeout,
        what=f"server {boot.name} to become ACTIVE",
        together=awaited_with(boot.owner),
    )


# A killed run's boot request can land after the re-run looked for its server: both
# pass Nova's API before either binds the port, and one fails ("Port ... is still in
# use", CI stop 23); Nova's clean-up of the failed one may unbind the port under the
# other, which then fails too. The re-run keeps one server of the node's name.


async def _recover_boot(
    p: Provider, boot: BootSpec, port_id: str, made: dict[str, str], error: FlotteError
) -> Any:
    """After this run's boot on an adopted port failed: if a server of the same name and
    owner exists, it is the node (or, failed too, both go and the port boots again)."""
    twins = await _twins(p, boot, but=made.get("server"))
    if not twins:
        raise error
    if made.get("server"):
        await delete_server(p, made.pop("server"), boot.name, boot.owner, timeout=boot.timeout)
    for twin in twins:
        made["server"] = twin.id
        try:
            return await _until_active(p, boot, twin)
        except FlotteError:
            await delete_server(p, made.pop("server"), boot.name, boot.owner, timeout=boot.timeout)
    return await _boot(p, boot, port_id, made)


async def _boot(p: Provider, boot: BootSpec, port_id: str, made: dict[str, str]) -> Any:
    compute = p.conn.compute
    body, extra = _server_body(boot, port_id)
    server = await create_once(
        p,
        f"boot server {boot.name}",
        lambda: rest.post(
            compute,
            "/servers",
            "server",
            body,
            microversion=rest.compute_microversion(compute),
            extra=extra,
        ),
        lambda: find_server(p, boot.name, boot.owner),
        servers=True,
    )
    made["server"] = server.id
    return await _until_active(p, boot, server)


async def _twins(p: Provider, boot: BootSpec, *, but: str | None) -> list[Any]:
    """The servers of this node's name and owner other than ``but``."""
    return [s for s in await servers_of(p, boot.name, boot.owner) if s.id != but]


async def _drop_twins(p: Provider, boot: BootSpec, *, keep: str) -> None:
    twins = await _twins(p, boot, but=keep)
    await asyncio.gather(
        *(delete_server(p, s.id, boot.name, boot.owner, timeout=boot.timeout) for s in twins)
    )


async def _drop_stray_ports(p: Provider, boot: BootSpec, *, keep: str) -> None:
    """Delete the node's ports other than ``keep`` that no server uses.

    A killed run's port request can land after the re-run listed the owner's ports (a
    loaded Neutron answers in seconds): the re-run then makes the node's port itself,
    and the late one would stay unused until the cluster is deleted (CI, stop 28). Run
    once the node's server is ACTIVE, long after such a request has landed. The node
    is healthy by then: a failure here is logged, not rolled back, and the sweep of
    ``cluster delete`` removes the port by its owner mark.
    """
    try:
        found = await ports_of(p, boot.name, boot.owner)
    except FlotteError as err:
        log.warning(
            "%s: unused ports may be left (%s); cluster delete removes them", boot.name, err
        )
        return
    stray = [port.id for port in found if port.id != keep and not port.device_id]
    done = await asyncio.gather(
        *(delete_port(p, port_id, boot.name) for port_id in stray), return_exceptions=True
    )
    for result in done:
        if isinstance(result, FlotteError):
            log.warning(
                "%s: an unused port was left (%s); cluster delete removes it", boot.name, result
            )
        elif isinstance(result, BaseException):
            raise result


async def create_node(p: Provider, boot: BootSpec, inv: Inventory | None) -> dict[str, Any]:
    """Make (or adopt) one node's port, floating IP and server; return the record data.

    On failure, what this call made is deleted before the error is raised, so a failed
    create leaves nothing; a killed one leaves owner-marked resources that the next run
    adopts (or ``sweep`` deletes).
    """
    server: Any = inv.servers.get(boot.name) if inv else await find_server(p, boot.name, boot.owner)
    if server is not None and server.status == "ERROR":
        # A failed boot from an earlier run: its fault was reported then; boot it again.
        await delete_server(p, server.id, boot.name, boot.owner, timeout=boot.timeout)
        server = None
    port: Any = inv.ports.get(boot.name) if inv else await find_port(p, boot.name, boot.owner)
    made: dict[str, Any] = {}
    fip_task: asyncio.Task[Any] | None = None
    try:
        if port is None:
            attrs = await neutron_attrs(
                p,
                boot.owner,
                name=boot.name,
                network_id=boot.network_id,
                security_groups=boot.security_group_ids,
            )
            if boot.subnet_id:
                attrs["fixed_ips"] = [{"subnet_id": boot.subnet_id}]
            port = await create_port(p, boot.name, boot.owner, attrs)
            made["port"] = port.id
        if boot.pool_id:
            fip_task = asyncio.create_task(_ensure_fip(p, boot, port.id, inv))
            # One turn of the loop lets the task take its place in the account's queue
            # (FIFO) before this node's boot does: the nodes' calls then alternate.
            await asyncio.sleep(0)
        if server is None and "port" not in made:
            # The port is from an earlier, interrupted run whose boot request may have
            # landed after the inventory was read: look again before booting a second
            # server on the same port (one request, only on this recovery path).
            server = await find_server(p, boot.name, boot.owner)
            if server is not None and server.status == "ERROR":
                await delete_server(p, server.id, boot.name, boot.owner, timeout=boot.timeout)
                server = None
        if server is None:
            try:
                server = await _boot(p, boot, port.id, made)
            except FlotteError as err:
                if "port" in made:
                    raise
                server = await _recover_boot(p, boot, port.id, made, err)
            else:
                if "port" not in made:
                    await _drop_twins(p, boot, keep=server.id)
        fip = None
        if fip_task is not None:
            fip = await fip_task
            made["fip"] = fip.id
        server = await _until_active(p, boot, server)
    except BaseException as err:
        if fip_task is not None and "fip" not in made:
            # The allocation runs beside the boot: learn what it made before undoing.
            done = await asyncio.gather(fip_task, return_exceptions=True)
            if not isinstance(done[0], BaseException):
                made["fip"] = done[0].id
        if isinstance(err, Exception):
            # Roll the node back whole, adopted parts included: a node that failed to
            # come up is not worth keeping, and the caller holds no record of it.
            if server is not None:
                made.setdefault("server", server.id)
            if port is not None:
                made.setdefault("port", port.id)
            await _undo(p, boot, made, err)
        raise
    if "port" in made and inv is not None and inv.earlier:
        await _drop_stray_ports(p, boot, keep=port.id)
    if inv is not None:
        # Keep the group's inventory true for the rest of this command (a second create
        # of the same node adopts instead of booting another server).
        inv.servers[boot.name] = server
        inv.ports[boot.name] = port
        if fip is not None:
            inv.fips[port.id] = fip
    fixed = fixed_ip(port, boot.ip_version)
    floating = str(fip.floating_ip_address) if fip is not None else ""
    return {
        "server_id": str(server.id),
        "port_id": str(port.id),
        "fip_id": str(fip.id) if fip is not None else "",
        "fixed_ip": fixed,
        "private_address": fixed,  # where the other nodes of a cluster reach it
        "floating_ip": floating,
        "addresses": [a for a in (floating, fixed) if a],
    }


async def _ensure_fip(p: Provider, boot: BootSpec, port_id: str, inv: Inventory | None) -> Any:
    net = p.conn.network
    found = inv.fips.get(port_id) if inv else await find_fip(p, port_id)
    if found is not None:
        return found
    attrs = await neutron_attrs(p, boot.owner, floating_network_id=boot.pool_id, port_id=port_id)
    return await create_once(
        p,
        f"allocate a floating IP for {boot.name}",
        lambda: rest.post(net, "/floatingips", "floatingip", attrs),
        lambda: find_fip(p, port_id),
    )


def _server_body(boot: BootSpec, port_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Nova's ``server`` body for this boot, and what travels beside it (the hints)."""
    attrs: dict[str, Any] = {
        "name": boot.name,
        "flavorRef": boot.flavor_id,
        "networks": [{"port": port_id}],
        "metadata": {**boot.metadata, **boot.marks},
        "config_drive": boot.config_drive,
    }
    if boot.volume_size > 0:
        # The volume is the node's disk and goes with it (delete_on_termination).
        attrs["block_device_mapping_v2"] = [
            {
                "boot_index": 0,
                "uuid": boot.image_id,
                "source_type": "image",
                "destination_type": "volume",
                "volume_size": boot.volume_size,
                "delete_on_termination": True,
            }
        ]
    else:
        attrs["imageRef"] = boot.image_id
    if boot.keypair:
        attrs["key_name"] = boot.keypair
    if boot.user_data:
        attrs["user_data"] = base64.b64encode(boot.user_data).decode()
    if boot.availability_zone:
        attrs["availability_zone"] = boot.availability_zone
    if not boot.server_group_id:
        return attrs, {}
    return attrs, {"os:scheduler_hints": {"group": boot.server_group_id}}


async def _undo(p: Provider, boot: BootSpec, made: Mapping[str, str], cause: Exception) -> None:
    """Delete what a failed create made; a failure here is left for ``sweep``."""
    try:
        await delete_node(
            p,
            boot.name,
            boot.owner,
            server_id=made.get("server"),
            port_id=made.get("port"),
            fip_id=made.get("fip"),
            timeout=min(boot.timeout, 120.0),
            search=False,
        )
    except FlotteError as err:
        cause.add_note(f"cleanup after the failure also failed: {err} (run the delete again)")


async def delete_server(
    p: Provider, server_id: str, name: str, owner: Owner, *, timeout: float
) -> None:
    compute = p.conn.compute
    await p.run(
        lambda: rest.delete(
            compute, f"/servers/{server_id}", microversion=rest.compute_microversion(compute)
        ),
        f"delete server {name}",
        retry=RETRY_READ,
        servers=True,
    )
    await ServerWatcher.of(p).wait(
        server_id,
        name,
        gone,
        timeout=timeout,
        what=f"server {name} to go",
        together=awaited_with(owner),
    )


async def delete_node(
    p: Provider,
    name: str,
    owner: Owner,
    *,
    server_id: str | None,
    port_id: str | None,
    fip_id: str | None,
    timeout: float = 200.0,
    search: bool = True,
) -> None:
    """Delete a node's floating IP, server and port; whatever is already gone is skipped.

    With ``search``, IDs missing from the record (a create killed half-way) are looked
    up by name and owner marker.
    """
    net = p.conn.network
    if search:
        if not server_id:
            server = await find_server(p, name, owner)
            server_id = server.id if server is not None else None
        if not port_id:
            port = await find_port(p, name, owner)
            port_id = port.id if port is not None else None
        if port_id and not fip_id:
            fip = await find_fip(p, port_id)
            fip_id = fip.id if fip is not None else None
    steps = []
    if fip_id:
        steps.append(
            p.run(
                lambda: rest.delete(net, f"/floatingips/{fip_id}"),
                f"release the floating IP of {name}",
                retry=RETRY_READ,
            )
        )
    if server_id:
        steps.append(delete_server(p, server_id, name, owner, timeout=timeout))
    results = await asyncio.gather(*steps, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    if port_id:
        await delete_port(p, port_id, name)


async def delete_port(p: Provider, port_id: str, name: str | None = None) -> None:
    """Delete one port, of node ``name`` when known (retried on Neutron's transient
    errors; already gone is done)."""
    net = p.conn.network
    await p.run(
        lambda: rest.delete(net, f"/ports/{port_id}"),
        f"delete the port of {name}" if name else f"delete port {port_id}",
        retry=RETRY_READ,
    )


_STATES = {
    "ACTIVE": NodeState.RUNNING,
    "BUILD": NodeState.STARTING,
    "REBUILD": NodeState.STARTING,
    "REBOOT": NodeState.STARTING,
    "HARD_REBOOT": NodeState.STARTING,
    "MIGRATING": NodeState.RUNNING,
    "RESIZE": NodeState.RUNNING,
    "VERIFY_RESIZE": NodeState.RUNNING,
    "SHUTOFF": NodeState.STOPPED,
    "STOPPED": NodeState.STOPPED,
    "PAUSED": NodeState.STOPPED,
    "SUSPENDED": NodeState.STOPPED,
    "SHELVED": NodeState.STOPPED,
    "SHELVED_OFFLOADED": NodeState.STOPPED,
    "ERROR": NodeState.ERROR,
    "DELETED": NodeState.NOT_FOUND,
    "SOFT_DELETED": NodeState.NOT_FOUND,
}


def node_state(server: Any) -> NodeState:
    if server is None:
        return NodeState.NOT_FOUND
    task = getattr(server, "task_state", None) or ""
    if task.startswith("powering-off") or task == "deleting":
        return NodeState.STOPPING
    if task.startswith("powering-on"):
        return NodeState.STARTING
    return _STATES.get(str(server.status), NodeState.UNKNOWN)


async def get_server(p: Provider, server_id: str) -> Any:
    from openstack import exceptions as os_exc

    compute = p.conn.compute
    try:
        return await p.read(lambda: compute.get_server(server_id), "get server", raw=True)
    except os_exc.NotFoundException:
        return None
    except Exception as err:
        if status_of(err) == 404:
            return None
        raise translate(err, "get server", p.spec) from err


async def power(p: Provider, server_id: str, name: str, action: str, timeout: float) -> Any:
    """start / stop / reboot, then wait until the server settles; a no-op when it already has."""
    compute = p.conn.compute
    server = await get_server(p, server_id)
    if server is None:
        raise DriverError(f"server {name} no longer exists", hint="remove the machine")
    target = "SHUTOFF" if action == "stop" else "ACTIVE"
    if action != "reboot" and server.status == target:
        return server
    call = {
        "start": lambda: compute.start_server(server_id),
        "stop": lambda: compute.stop_server(server_id),
        "reboot": lambda: compute.reboot_server(server_id, "SOFT"),
    }[action]
    await p.run(call, f"{action} server {name}", servers=True)

    def settled(s: Any) -> bool:
        if s is None:
            raise DriverError(f"server {name} disappeared")
        if s.status == "ERROR":
            raise DriverError(f"server {name}: {fault_message(s)}")
        return bool(s.status == target and not getattr(s, "task_state", None))

    return await ServerWatcher.of(p).wait(
        server_id, name, settled, timeout=timeout, what=f"server {name} to {action}"
    )
