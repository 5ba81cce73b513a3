"""Launching nodes: one RunInstances per launch configuration, adopted on a re-run.

``create_many`` launches every missing node of a launch configuration (image, type,
subnet, volume, user data, node group and role) in one RunInstances call. The
instances are tagged at launch (TagSpecifications, so a crash never leaves an untagged
instance) with the owner marks, node group, role and a launch hash; a launch of one
node also gets the node's name there. The instances of a launch of many share one tag
set, so which node each is comes from the launch journal (:mod:`.journal`: node names
in ``AmiLaunchIndex`` order under the launch's ``ClientToken``, written before the
call), not from one CreateTags per node: at 1,000 nodes those were 1,000 mutating
calls, 190 s of AWS's request bucket.

A re-run first lists the group's instances by tag and adopts those whose node it
knows (name tag, or journal), naming them with a tag then (the rare path); it hands
instances it cannot place, from a killed run, to the nodes still missing, and
terminates any surplus (a RunInstances retried after a lost answer). Calls per node:
a share of RunInstances and of the batched DescribeInstances polls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flotte.drivers.batch import gather_all
from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import Clients, Ec2Api
from flotte.drivers.ec2.journal import LAUNCH_TAG, Entry, node_of
from flotte.drivers.ec2.lookups import Lookups
from flotte.drivers.ec2.nodes import Nodes, node_marks
from flotte.drivers.ec2.userdata import user_data
from flotte.models import NODE_KEY, NodeRecord, NodeSpec, Owner

LAUNCH_CHUNK = 250  # nodes per RunInstances at most


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
        self.journal = nodes.journal
        self._lock: asyncio.Lock | None = None

    async def create_many(
        self, specs: list[NodeSpec], shared: Mapping[str, Any]
    ) -> list[NodeRecord]:
        """Make (or adopt) every node in ``specs``: one RunInstances per launch config."""
        if not specs:
            return []
        api = self.conn.api_for(shared)
        # Tags every node of the batch has (the group's owner marks).
        group_tags = dict(
            set.intersection(*(set(self.conn.owner(s.owner).tags().items()) for s in specs))
        )
        launches: dict[str, Launch] = {}
        settings_of: dict[str, dict[str, Any]] = {}
        for spec in specs:
            settings = self.conn.settings(spec.options)
            settings_of[spec.name] = settings
            inputs = await self.lookups.launch_inputs({**settings, **cfg.target_options(shared)})
            # A node's marks but its name (node group, role; a lone machine's own) go on
            # at launch, so nodes that differ in them launch apart.
            marks = {k: v for k, v in node_marks(self.conn, spec).items() if k != NODE_KEY}
            params = self._run_params(inputs, group_tags, marks, shared, settings)
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
        """Instance of each node: known ones adopted, unknown ones of a killed run reused,
        the rest launched; surplus (a retried RunInstances) terminated."""
        owner = Owner.from_tags(group_tags)
        entries = self.journal.entries(owner)
        live = await self.nodes.instances(api, group_tags)
        # Tagged instances first: a node's name tag beats a journal entry of a launch
        # that was retried and made the node twice.
        live.sort(key=lambda i: (NODE_KEY not in sh.tags_of(i), i["InstanceId"]))
        by_node: dict[str, dict[str, Any]] = {}
        doubles: dict[str, list[dict[str, Any]]] = {}
        unnamed: dict[str, list[dict[str, Any]]] = {}
        for inst in live:
            state = inst["State"]["Name"]
            if state == "shutting-down":  # its node is missing, not adoptable
                continue
            node = node_of(inst, entries)
            if node and node in by_node:
                doubles.setdefault(node, []).append(inst)
            elif node:
                by_node[node] = inst
            elif inst["InstanceId"] not in self.nodes.claimed and state != "stopping":
                unnamed.setdefault(sh.tags_of(inst).get(LAUNCH_TAG, ""), []).append(inst)
        chosen: dict[str, dict[str, Any]] = {}
        adopted: list[tuple[NodeSpec, dict[str, Any]]] = []
        surplus: list[str] = []
        runs: list[tuple[Launch, list[NodeSpec], list[dict[str, Any]]]] = []
        for launch in launches.values():
            missing: list[NodeSpec] = []
            for spec in launch.specs:
                known = by_node.get(spec.name)
                if known is None:
                    missing.append(spec)
                    continue
                chosen[spec.name] = known
                surplus += [i["InstanceId"] for i in doubles.get(spec.name, [])]
                if NODE_KEY not in sh.tags_of(known):
                    adopted.append((spec, known))
            if missing:
                pool = sorted(unnamed.pop(launch.digest, []), key=lambda i: i["InstanceId"])
                adopted += list(zip(missing, pool, strict=False))
                runs.append((launch, missing, pool))

        async def launch_all(launch: Launch, specs: list[NodeSpec]) -> list[dict[str, Any]]:
            # At most LAUNCH_CHUNK nodes per RunInstances, one call after the other: a
            # call's time grows with its nodes (moto takes a minute for 1,000 on a busy
            # machine, past the client's read timeout, and a retried launch is launched
            # twice there), and a launch too big for the zone's capacity fails whole.
            out: list[dict[str, Any]] = []
            for i in range(0, len(specs), LAUNCH_CHUNK):
                part = specs[i : i + LAUNCH_CHUNK]
                out += await self._run(api, launch, owner, part, len(part))
            return out

        # The launch configurations' RunInstances go at once (node groups of a cluster).
        launched = await gather_all(
            *(
                launch_all(launch, missing[len(pool) :])
                for launch, missing, pool in runs
                if len(missing) > len(pool)
            )
        )
        fresh = iter(launched)
        for _launch, missing, pool in runs:
            if len(missing) > len(pool):
                pool = pool + next(fresh)
            pairs = list(zip(missing, pool, strict=False))
            chosen.update({spec.name: inst for spec, inst in pairs})
            self.nodes.claimed.update(inst["InstanceId"] for _, inst in pairs)
            surplus += [i["InstanceId"] for i in pool[len(missing) :]]
        # Adopting (a re-run): each adopted instance gets its node's name as a tag.
        await asyncio.gather(*(self._name(api, spec, inst, group_tags) for spec, inst in adopted))
        if surplus:
            await self.nodes.terminate(api, surplus)
        return chosen

    def _run_params(
        self,
        inputs: Mapping[str, Any],
        group_tags: dict[str, str],
        marks: dict[str, str],
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
            "tags": {**inputs["tags"], **marks},
        }
        subnet = settings.get("ec2_subnet_id") or shared.get("subnet_id")
        if subnet:
            params["SubnetId"] = subnet
        return params

    async def _run(
        self, api: Ec2Api, launch: Launch, owner: Owner, missing: list[NodeSpec], count: int
    ) -> list[dict[str, Any]]:
        """Launch ``missing`` in one call; the instances in the order of ``missing``."""
        params = launch.params
        tags = {**params["tags"], LAUNCH_TAG: launch.digest}
        if count == 1:  # one node: its name goes on at launch too
            tags = {**tags, NODE_KEY: missing[0].name, "Name": missing[0].name}
        else:
            who = owner.cluster or owner.machine
            tags = {"Name": who, **tags} if who else tags
        call = {k: v for k, v in params.items() if k != "tags"}
        # Same token for the same missing nodes: AWS answers a retried RunInstances with the
        # instances of the first one instead of launching more.
        names = [s.name for s in missing]
        token = hashlib.sha256(f"{launch.digest}/{count}/{','.join(names)}".encode()).hexdigest()
        token = token[:48]
        if count > 1:
            await asyncio.to_thread(
                self.journal.write, owner, Entry(token, launch.digest, tuple(names))
            )
        retried = api.retries["RunInstances"]
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
        instances: list[dict[str, Any]] = sorted(
            result.get("Instances", []), key=lambda i: int(i.get("AmiLaunchIndex") or 0)
        )
        if api.retries["RunInstances"] > retried:
            await self._strays(api, launch, token, instances)
        return instances

    async def _strays(
        self, api: Ec2Api, launch: Launch, token: str, kept: list[dict[str, Any]]
    ) -> None:
        """Terminate instances of a RunInstances that was retried after a lost answer.

        AWS returns the first launch again for the same ClientToken; other EC2 APIs
        (and moto) launch twice: the first batch has the same token and tags but belongs
        to nobody. Only this token's instances are looked at: earlier launches of the
        same configuration are other nodes.
        """
        mine = {i["InstanceId"] for i in kept}
        found = await self.nodes.instances(
            api, {**launch.params["tags"], LAUNCH_TAG: launch.digest}
        )
        strays = [
            i["InstanceId"]
            for i in found
            if i["InstanceId"] not in mine and i.get("ClientToken") == token
        ]
        if strays:
            await self.nodes.terminate(api, strays)

    async def _name(
        self, api: Ec2Api, spec: NodeSpec, inst: dict[str, Any], group_tags: dict[str, str]
    ) -> None:
        own = {k: v for k, v in node_marks(self.conn, spec).items() if k not in group_tags}
        tags = {**own, "Name": spec.name}
        await api.call(
            "create_tags", eventual=True, Resources=[inst["InstanceId"]], Tags=sh.tag_list(tags)
        )
