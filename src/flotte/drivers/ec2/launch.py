"""Launching nodes: one RunInstances per launch configuration, adopted on a re-run.

``create_many`` launches every missing node of a launch configuration in one
RunInstances call: the instances are tagged at launch with the owner and a launch hash
(TagSpecifications, so a crash never leaves an untagged instance), then each gets its
node name with one CreateTags. A re-run first lists the group's instances by tag,
adopts named ones, hands unnamed ones from a killed run to the nodes still missing,
and terminates any surplus (a RunInstances retried after a lost answer). Calls per
node: CreateTags, plus a share of RunInstances and the batched DescribeInstances polls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import Clients, Ec2Api
from flotte.drivers.ec2.lookups import Lookups
from flotte.drivers.ec2.nodes import Nodes, node_marks
from flotte.drivers.ec2.userdata import user_data
from flotte.models import NODE_KEY, NodeRecord, NodeSpec

LAUNCH_TAG = "flotte:launch"


@dataclass
class Launch:
    """Nodes that share one RunInstances: same image, type, subnet, volume, user data."""

    digest: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    specs: list[NodeSpec] = field(default_factory=list)


class Launcher:
    """Makes (or adopts) the instances of nodes; claims never race within a process."""

    def __init__(self, conn: Clients, lookups: Lookups, nodes: Nodes) -> None:
        self.conn = conn
        self.lookups = lookups
        self.nodes = nodes
        self._lock: asyncio.Lock | None = None

    async def create_many(
        self, specs: list[NodeSpec], shared: Mapping[str, Any]
    ) -> list[NodeRecord]:
        """Make (or adopt) every node in ``specs``: one RunInstances per launch config."""
        if not specs:
            return []
        api = self.conn.api_for(shared)
        # Tags every node of the batch has; a node's own (flotte:machine of a lone machine
        # in a mixed batch) are added with its name.
        group_tags = dict(
            set.intersection(*(set(self.conn.owner(s.owner).tags().items()) for s in specs))
        )
        launches: dict[str, Launch] = {}
        settings_of: dict[str, dict[str, Any]] = {}
        for spec in specs:
            settings = self.conn.settings(spec.options)
            settings_of[spec.name] = settings
            inputs = await self.lookups.launch_inputs({**settings, **cfg.target_options(shared)})
            params = self._run_params(inputs, group_tags, shared, settings)
            digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
            launches.setdefault(digest, Launch(digest, params, inputs)).specs.append(spec)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # claiming unnamed instances must not race in this process
            chosen = await self._claim(api, launches, group_tags)
        timeout = float(self.conn.settings().get("ec2_active_timeout") or 300)
        # A node the user stopped is adopted as it is: creating does not start it.
        resting = {
            i["InstanceId"]: i
            for i in chosen.values()
            if i["State"]["Name"] in ("stopped", "stopping")
        }
        waiting = [i["InstanceId"] for i in chosen.values() if i["InstanceId"] not in resting]
        running = {**resting, **await self.nodes.wait(api, waiting, "running", timeout)}

        async def finish(spec: NodeSpec, launch: Launch) -> NodeRecord:
            inst = running[chosen[spec.name]["InstanceId"]]
            settings = settings_of[spec.name]
            record = self.nodes.record(spec, inst, shared, settings, launch.inputs)
            if settings.get("ec2_elastic_ip"):
                record = await self.nodes.elastic_ip(api, spec, record)
            return record

        by_name = {
            r.name: r
            for r in await asyncio.gather(
                *(finish(spec, launch) for launch in launches.values() for spec in launch.specs)
            )
        }
        return [by_name[spec.name] for spec in specs]

    async def _claim(
        self, api: Ec2Api, launches: Mapping[str, Launch], group_tags: dict[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Instance of each node: named ones adopted, unnamed ones of a killed run reused,
        the rest launched; surplus (a retried RunInstances) terminated."""
        live = await self.nodes.instances(api, group_tags)
        # A node whose instance is being terminated is missing, not adoptable.
        by_node = {
            sh.tags_of(i)[NODE_KEY]: i
            for i in live
            if sh.tags_of(i).get(NODE_KEY) and i["State"]["Name"] != "shutting-down"
        }
        unnamed: dict[str, list[dict[str, Any]]] = {}
        for inst in live:
            tags = sh.tags_of(inst)
            adoptable = inst["State"]["Name"] not in ("shutting-down", "stopping")
            if NODE_KEY not in tags and inst["InstanceId"] not in self.nodes.claimed and adoptable:
                unnamed.setdefault(tags.get(LAUNCH_TAG, ""), []).append(inst)
        chosen: dict[str, dict[str, Any]] = {}
        for launch in launches.values():
            missing = [s for s in launch.specs if s.name not in by_node]
            chosen.update({s.name: by_node[s.name] for s in launch.specs if s.name in by_node})
            if not missing:
                continue
            pool = sorted(unnamed.pop(launch.digest, []), key=lambda i: i["InstanceId"])
            need = len(missing) - len(pool)
            if need > 0:
                retried = api.retries["RunInstances"]
                pool += await self._run(api, launch, missing[len(pool) :], need)
                if api.retries["RunInstances"] > retried:
                    await self._strays(api, launch, group_tags, pool)
            pairs = list(zip(missing, pool, strict=False))
            await asyncio.gather(*(self._name(api, spec, inst, group_tags) for spec, inst in pairs))
            chosen.update({spec.name: inst for spec, inst in pairs})
            self.nodes.claimed.update(inst["InstanceId"] for _, inst in pairs)
            surplus = [i["InstanceId"] for i in pool[len(missing) :]]
            if surplus:
                await self.nodes.terminate(api, surplus)
        return chosen

    async def _strays(
        self,
        api: Ec2Api,
        launch: Launch,
        group_tags: dict[str, str],
        pool: list[dict[str, Any]],
    ) -> None:
        """Terminate instances of a RunInstances that was retried after a lost answer.

        AWS returns the first launch again for the same ClientToken; other EC2 APIs
        (and moto) launch twice: the first batch is tagged but belongs to nobody.
        """
        mine = {i["InstanceId"] for i in pool} | self.nodes.claimed
        found = await self.nodes.instances(api, {**group_tags, LAUNCH_TAG: launch.digest})
        strays = [
            i["InstanceId"]
            for i in found
            if i["InstanceId"] not in mine and NODE_KEY not in sh.tags_of(i)
        ]
        if strays:
            await self.nodes.terminate(api, strays)

    def _run_params(
        self,
        inputs: Mapping[str, Any],
        group_tags: dict[str, str],
        shared: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> dict[str, Any]:
        image = inputs["image"]
        params: dict[str, Any] = {
            "ImageId": image["ImageId"],
            "InstanceType": inputs["instance_type"],
            "KeyName": shared["key_name"],
            "UserData": user_data(group_tags, inputs["user_data_extra"]),
            "BlockDeviceMappings": [
                {
                    "DeviceName": image.get("RootDeviceName") or "/dev/xvda",
                    "Ebs": {
                        "VolumeSize": inputs["root_size"],
                        "VolumeType": inputs["volume_type"],
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "SecurityGroupIds": [shared["security_group_id"]],
            "tags": {**inputs["tags"], **group_tags},
        }
        subnet = settings.get("ec2_subnet_id") or shared.get("subnet_id")
        if subnet:
            params["SubnetId"] = subnet
        return params

    async def _run(
        self, api: Ec2Api, launch: Launch, missing: list[NodeSpec], count: int
    ) -> list[dict[str, Any]]:
        params = launch.params
        tags = {**params["tags"], LAUNCH_TAG: launch.digest}
        call = {k: v for k, v in params.items() if k != "tags"}
        # Same token for the same missing nodes: AWS answers a retried RunInstances with the
        # instances of the first one instead of launching more.
        names = ",".join(s.name for s in missing)
        token = hashlib.sha256(f"{launch.digest}/{count}/{names}".encode()).hexdigest()[:48]
        result = await api.call(
            "run_instances",
            MinCount=count,
            MaxCount=count,
            ClientToken=token,
            TagSpecifications=[
                {"ResourceType": kind, "Tags": sh.tag_list(tags)}
                for kind in ("instance", "volume", "network-interface")
            ],
            **call,
        )
        instances: list[dict[str, Any]] = result.get("Instances", [])
        return instances

    async def _name(
        self, api: Ec2Api, spec: NodeSpec, inst: dict[str, Any], group_tags: dict[str, str]
    ) -> None:
        own = {k: v for k, v in node_marks(self.conn, spec).items() if k not in group_tags}
        tags = {**own, "Name": spec.name}
        await api.call(
            "create_tags", eventual=True, Resources=[inst["InstanceId"]], Tags=sh.tag_list(tags)
        )
