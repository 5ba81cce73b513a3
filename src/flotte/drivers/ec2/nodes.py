"""EC2 instances as nodes: records, waits, power, snapshots, termination.

An instance is found by its ID, or by its ``flotte:node`` tag when a killed create
never recorded one. DescribeInstances polls cover every awaited instance at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any

from flotte.drivers.batch import Batcher, answers
from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2 import sweep as sw
from flotte.drivers.ec2.connection import Clients, Ec2Api
from flotte.drivers.ec2.journal import LAUNCH_TAG, Journal
from flotte.errors import DriverError, NotFound, TimeoutError_, UsageError
from flotte.models import NODE_KEY, OWNER_KEY, NodeRecord, NodeSpec, NodeState

STATES = {
    "pending": NodeState.STARTING,
    "running": NodeState.RUNNING,
    "stopping": NodeState.STOPPING,
    "shutting-down": NodeState.STOPPING,
    "stopped": NodeState.STOPPED,
    "terminated": NodeState.NOT_FOUND,
}


SNAPSHOT_KEY = "flotte:snapshot-of"  # on an image: the node it was made from (not an owner mark)


def node_marks(conn: Clients, spec: NodeSpec) -> dict[str, str]:
    """``spec.tags()``, with this installation as owner when the spec names none."""
    return conn.owner(spec.owner).tags(node=spec.name, nodegroup=spec.group, role=spec.role.value)


class Nodes:
    """The instances of one driver, and which of them this process has handed out."""

    def __init__(self, conn: Clients, driver: str) -> None:
        self.conn = conn
        self.ctx = conn.ctx
        self.driver = driver
        self.claimed: set[str] = set()  # instance IDs handed to a node in this process
        self.journal = Journal(conn.ctx.home)  # which node each instance of a launch is
        self.poll_interval = float(os.environ.get("FLOTTE_EC2_POLL", "2"))
        # The states asked together (``machine ls`` asks every node at once) answered by
        # one DescribeInstances per 500 instances, not one each.
        self._described: Batcher[Ec2Api, str, dict[str, Any] | None] = Batcher(
            answers(self._describe_all)
        )

    async def describe(self, api: Ec2Api, ids: list[str]) -> dict[str, dict[str, Any]]:
        pages = await asyncio.gather(
            *(
                api.pages("describe_instances", "Reservations", InstanceIds=chunk, eventual=True)
                for chunk in sw.chunks(ids)  # side by side: each waits on the API
            )
        )
        return {inst["InstanceId"]: inst for page in pages for r in page for inst in r["Instances"]}

    async def wait(
        self,
        api: Ec2Api,
        ids: list[str],
        want: str,
        timeout: float,
    ) -> dict[str, dict[str, Any]]:
        """Poll DescribeInstances for all ``ids`` at once until each is ``want``."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.describe(api, ids)
            states = {i: found[i]["State"]["Name"] if i in found else "?" for i in ids}
            if all(s == want for s in states.values()):
                return found
            dead = [
                i for i, s in states.items() if s in ("terminated", "shutting-down") and want != s
            ]
            if dead:
                reason = found[dead[0]].get("StateReason", {}).get("Message", "")
                raise DriverError(f"instance {dead[0]} ended while waiting for {want}: {reason}")
            if time.monotonic() > deadline:
                late = ", ".join(f"{i} {s}" for i, s in states.items() if s != want)
                raise TimeoutError_(f"instances not {want} after {timeout:.0f} s: {late}")
            await asyncio.sleep(self.poll_interval)

    def record(
        self,
        spec: NodeSpec,
        inst: Mapping[str, Any],
        shared: Mapping[str, Any],
        settings: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> NodeRecord:
        public = inst.get("PublicIpAddress") or ""
        private = inst.get("PrivateIpAddress") or ""
        first = private if settings.get("ec2_private_address_only") else (public or private)
        addresses = [a for a in dict.fromkeys([first, public, private]) if a]
        return NodeRecord(
            name=spec.name,
            driver=self.driver,
            provider_id=inst["InstanceId"],
            addresses=addresses,
            data={
                **cfg.target_options(shared, prefix=""),
                "instance_id": inst["InstanceId"],
                "instance_type": inst.get("InstanceType"),
                "image_id": inst.get("ImageId"),
                "zone": inst.get("Placement", {}).get("AvailabilityZone"),
                "ssh_user": inputs["ssh_user"],
                "key_path": shared.get("key_path"),
                "security_group_id": shared.get("security_group_id"),
                "private_address_only": bool(settings.get("ec2_private_address_only")),
                "private_address": private,
                "active_timeout": int(settings.get("ec2_active_timeout") or 300),
                "owner": node_marks(self.conn, spec),
            },
        )

    async def elastic_ip(self, api: Ec2Api, spec: NodeSpec, record: NodeRecord) -> NodeRecord:
        tags = self.conn.owner(spec.owner).tags(node=spec.name)
        address = await sh.ensure_elastic_ip(api, tags, record.provider_id)
        ip = address["PublicIp"]
        addresses = [ip, *[a for a in record.addresses if a != ip]]
        if record.data.get("private_address_only"):
            addresses = [record.addresses[0], *[a for a in addresses if a != record.addresses[0]]]
        data = {**record.data, "allocation_id": address["AllocationId"], "elastic_ip": ip}
        return dataclasses.replace(record, addresses=addresses, data=data)

    async def ids(self, api: Ec2Api, node: NodeRecord) -> list[str]:
        if node.provider_id:
            return [node.provider_id]
        owner = {OWNER_KEY: self.ctx.installation, NODE_KEY: node.name}
        tagged = [i["InstanceId"] for i in await self.instances(api, owner)]
        if tagged:
            return tagged
        # Launched with others, not named yet: its launch's journal entry says which.
        hit = await asyncio.to_thread(self.journal.find, node.name)
        if hit is None:
            return []
        entry, index = hit
        launched = {OWNER_KEY: self.ctx.installation, LAUNCH_TAG: entry.digest}
        return [
            i["InstanceId"]
            for i in await self.instances(api, launched)
            if i.get("ClientToken") == entry.token and i.get("AmiLaunchIndex") == index
        ]

    async def state(self, node: NodeRecord) -> NodeState:
        api = self.conn.api_for(node.data)
        ids = await self.ids(api, node)
        if not ids:
            return NodeState.NOT_FOUND
        inst = await self._described.submit(api, ids[0])
        return STATES.get(inst["State"]["Name"], NodeState.UNKNOWN) if inst else NodeState.NOT_FOUND

    async def _describe_all(self, api: Ec2Api, ids: list[str]) -> dict[str, dict[str, Any]]:
        try:
            return await self.describe(api, ids)
        except UsageError:
            # InvalidInstanceID.NotFound, long after a termination, fails the whole call:
            # each ID alone then says which are gone
            pass

        async def alone(iid: str) -> dict[str, dict[str, Any]]:
            try:
                return await self.describe(api, [iid])
            except UsageError:
                return {}

        out: dict[str, dict[str, Any]] = {}
        for found in await asyncio.gather(*(alone(i) for i in ids)):
            out.update(found)
        return out

    async def one(self, node: NodeRecord) -> tuple[Ec2Api, str]:
        api = self.conn.api_for(node.data)
        ids = await self.ids(api, node)
        if not ids:
            raise NotFound(f"instance of {node.name} not found in {api.where}")
        return api, ids[0]

    async def start(self, node: NodeRecord) -> NodeRecord:
        api, iid = await self.one(node)
        await api.call("start_instances", InstanceIds=[iid])
        inst = (await self.wait(api, [iid], "running", 300))[iid]
        # Without an Elastic IP the public address changes on every start.
        public = node.data.get("elastic_ip") or inst.get("PublicIpAddress") or ""
        private = inst.get("PrivateIpAddress") or ""
        first = private if node.data.get("private_address_only") else (public or private)
        addresses = [a for a in dict.fromkeys([first, public, private]) if a]
        return dataclasses.replace(node, addresses=addresses)

    async def stop(self, node: NodeRecord) -> None:
        api, iid = await self.one(node)
        await api.call("stop_instances", InstanceIds=[iid])
        await self.wait(api, [iid], "stopped", 600)

    async def kill(self, node: NodeRecord) -> None:
        api, iid = await self.one(node)
        await api.call("stop_instances", InstanceIds=[iid], Force=True)
        await self.wait(api, [iid], "stopped", 600)

    async def restart(self, node: NodeRecord) -> NodeRecord:
        api, iid = await self.one(node)
        await api.call("reboot_instances", InstanceIds=[iid])
        return node  # a reboot keeps the addresses

    async def snapshot(self, node: NodeRecord, name: str) -> str:
        """An AMI of the node (CreateImage); tagged as flotte's but kept by ``sweep``."""
        api, iid = await self.one(node)
        tags = {OWNER_KEY: self.ctx.installation, SNAPSHOT_KEY: node.name}
        result = await api.call(
            "create_image",
            InstanceId=iid,
            Name=name,
            Description=f"flotte snapshot of {node.name}",
            TagSpecifications=[{"ResourceType": "image", "Tags": sh.tag_list(tags)}],
        )
        # Its EBS snapshots get the same tags afterwards (not every EC2 API accepts
        # "snapshot" in CreateImage's TagSpecifications).
        image = await api.call("describe_images", eventual=True, ImageIds=[result["ImageId"]])
        snapshots = [
            m["Ebs"]["SnapshotId"]
            for i in image.get("Images", [])
            for m in i.get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        if snapshots:
            await api.call(
                "create_tags", eventual=True, Resources=snapshots, Tags=sh.tag_list(tags)
            )
        return str(result["ImageId"])

    async def remove_many(self, nodes: list[NodeRecord]) -> None:
        """Remove nodes of one target with one TerminateInstances."""
        if not nodes:
            return
        api = self.conn.api_for(nodes[0].data)
        await asyncio.gather(
            *(
                sw.release_address(api, {"AllocationId": n.data["allocation_id"]})
                for n in nodes
                if n.data.get("allocation_id")
            )
        )
        found = await asyncio.gather(*(self.ids(api, n) for n in nodes))
        ids = [iid for group in found for iid in group]
        if ids:
            await self.terminate(api, ids)
        self.claimed.difference_update(ids)

    async def terminate(self, api: Ec2Api, ids: list[str]) -> None:
        await sw.terminate(api, ids)

    async def instances(self, api: Ec2Api, tags: dict[str, str]) -> list[dict[str, Any]]:
        return await sw.instances(api, tags)
