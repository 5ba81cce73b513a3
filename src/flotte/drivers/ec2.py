"""EC2-API clouds (AWS, 3DS Outscale) through boto3.

A group (one machine, or one cluster) shares a security group and a key pair; its nodes
are instances. ``create_many`` launches every missing node of a launch configuration in
one RunInstances call: the instances are tagged at launch with the owner and a launch
hash (TagSpecifications, so a crash never leaves an untagged instance), then each gets
its node name with one CreateTags. A re-run first lists the group's instances by tag,
adopts named ones, hands unnamed ones from a killed run to the nodes still missing, and
terminates any surplus (a RunInstances retried after a lost answer). Calls per node:
CreateTags, plus a share of RunInstances and the batched DescribeInstances polls.

Nothing leaks: ``sweep`` finds instances, Elastic IPs, volumes, key pairs and security
groups by their ``flotte:*`` tags, and ``release`` is a sweep of the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotte.config import write_secret
from flotte.drivers import ec2_config as cfg
from flotte.drivers import ec2_shared as sh
from flotte.drivers import ec2_sweep as sw
from flotte.drivers.base import Capabilities, Driver, DriverContext, GroupSpec
from flotte.drivers.ec2_api import Ec2Api, RetryPolicy, buckets_for, translate
from flotte.drivers.ec2_batch import Batcher, gather_all
from flotte.drivers.ec2_userdata import user_data
from flotte.errors import (
    DriverError,
    FlotteError,
    NotFound,
    TimeoutError_,
    UsageError,
)
from flotte.models import Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner

STATES = {
    "pending": NodeState.STARTING,
    "running": NodeState.RUNNING,
    "stopping": NodeState.STOPPING,
    "shutting-down": NodeState.STOPPING,
    "stopped": NodeState.STOPPED,
    "terminated": NodeState.NOT_FOUND,
}
NODE_TAG = "flotte:node"
LAUNCH_TAG = "flotte:launch"


@dataclass
class Launch:
    """Nodes that share one RunInstances: same image, type, subnet, volume, user data."""

    digest: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    specs: list[NodeSpec] = field(default_factory=list)


class EC2Driver(Driver):
    """Docker hosts on AWS or Outscale instances (``-d ec2``)."""

    name = "ec2"
    description = "EC2-API clouds: AWS, 3DS Outscale (boto3)"
    capabilities = Capabilities(snapshot=True, max_parallel=16, batch_create=True)
    options = cfg.OPTIONS

    def __init__(self, ctx: DriverContext, *, client: Any = None) -> None:
        super().__init__(ctx)
        self._client = client  # injected boto3 client (tests, embedding); else built per target
        self._apis: dict[cfg.Target, Ec2Api] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._claimed: set[str] = set()  # instance IDs handed to a node in this process
        self._lock: asyncio.Lock | None = None
        # Parallel create()/remove() calls of one plan become one RunInstances /
        # TerminateInstances (see ec2_batch).
        self._creates: Batcher[tuple[NodeSpec, Mapping[str, Any]], NodeRecord] = Batcher(
            self._create_batch
        )
        self._removes: Batcher[NodeRecord, None] = Batcher(self._remove_batch)
        self.poll_interval = float(os.environ.get("FLOTTE_EC2_POLL", "2"))

    # -- settings and clients --------------------------------------------------------

    def _settings(self, *extra: Mapping[str, Any] | None) -> dict[str, Any]:
        """ctx options < group options < node options; key flags moved to a 0600 file."""
        merged: dict[str, Any] = {}
        for source in (self.ctx.options, *extra):
            for key, value in (source or {}).items():
                if value not in (None, (), []):
                    merged[key] = value
        if merged.get("ec2_access_key"):
            keys = {
                "aws_access_key_id": merged.pop("ec2_access_key"),
                "aws_secret_access_key": merged.pop("ec2_secret_key", None),
                "aws_session_token": merged.pop("ec2_session_token", None),
            }
            digest = hashlib.sha256(keys["aws_access_key_id"].encode()).hexdigest()[:12]
            path = self.ctx.home / "ec2" / "credentials" / f"{digest}.json"
            data = json.dumps(keys).encode()
            if not path.exists() or path.read_bytes() != data:
                write_secret(path, data)
            merged["ec2_credentials_file"] = str(path)
        return merged

    def _target(self, settings: Mapping[str, Any]) -> cfg.Target:
        return cfg.target(settings)

    def api(self, tgt: cfg.Target) -> Ec2Api:
        """The retrying, paced API for ``tgt`` (one per target in this driver)."""
        found = self._apis.get(tgt)
        if found is not None:
            return found
        client = self._client if self._client is not None else self._make_client(tgt)
        api = Ec2Api(
            client,
            where=tgt.where,
            buckets=buckets_for(tgt.profile or "", tgt.region, tgt.endpoint_url or ""),
            max_parallel=self.capabilities.max_parallel,
            retry=RetryPolicy(),
        )
        self._apis[tgt] = api
        return api

    def _make_client(self, tgt: cfg.Target) -> Any:
        try:
            client = cfg.make_client(tgt, max_parallel=self.capabilities.max_parallel)
            creds = client._request_signer._credentials
        except FlotteError:
            raise
        except Exception as err:
            raise translate(err, "setup", tgt.where) from err
        if creds is None:
            from botocore.exceptions import NoCredentialsError

            raise translate(NoCredentialsError(), "setup", tgt.where)
        return client

    def api_calls(self) -> Counter[str]:
        """Logical API calls by action made through this driver (for benchmarks)."""
        total: Counter[str] = Counter()
        for api in self._apis.values():
            total.update(api.calls)
        return total

    def _api_for(self, data: Mapping[str, Any]) -> Ec2Api:
        """The API a stored node or group was made through (rm needs no flags again)."""
        if data.get("region"):
            return self.api(
                cfg.Target(
                    cloud=data.get("cloud") or "aws",
                    region=data["region"],
                    endpoint_url=data.get("endpoint_url"),
                    profile=self.option("ec2_profile") or data.get("profile"),
                    credentials_file=data.get("credentials_file"),
                )
            )
        return self.api(self._target(self._settings()))

    def _owner(self, owner: Owner) -> Owner:
        if owner.installation:
            return owner
        return dataclasses.replace(owner, installation=self.ctx.installation)

    async def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = await make()
        return self._cache[key]

    # -- check and prepare -----------------------------------------------------------

    async def _validate_region(self, api: Ec2Api, tgt: cfg.Target) -> None:
        if tgt.cloud != "custom" or tgt.region in cfg.aws_regions() | set(cfg.OUTSCALE_REGIONS):
            return
        try:
            found = await api.call("describe_regions", attempts=3)
            names = {r["RegionName"] for r in found.get("Regions", [])}
        except DriverError as err:
            raise UsageError(f"unknown region {tgt.region!r} at {tgt.endpoint_url}") from err
        if tgt.region not in names:
            raise UsageError(
                f"unknown region {tgt.region!r} at {tgt.endpoint_url}: "
                f"choose one of {', '.join(sorted(names))}"
            )

    async def _instance_type(self, api: Ec2Api, tgt: cfg.Target, name: str) -> None:
        if not cfg.valid_instance_type(tgt.cloud, name):
            raise UsageError(f"unknown instance type {name!r}")
        if tgt.cloud == "outscale":
            return  # FCU has no DescribeInstanceTypes; RunInstances says no if wrong
        try:
            await api.call("describe_instance_types", InstanceTypes=[name])
        except UsageError as err:
            raise UsageError(f"unknown instance type {name!r} in {api.where}") from err
        except DriverError as err:
            if "InvalidAction" not in str(err) and "Unsupported" not in str(err):
                raise

    async def _launch_inputs(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and resolve what a launch needs (cached: groups share most of it)."""
        tgt = self._target(settings)
        api = self.api(tgt)
        dflt = cfg.defaults(tgt.cloud)
        await self._cached(("region", tgt), lambda: self._validate_region(api, tgt))
        itype = settings.get("ec2_instance_type") or dflt["instance_type"]
        ami = settings.get("ec2_ami") or dflt["ami"]
        owner = settings.get("ec2_ami_owner") or (
            None if settings.get("ec2_ami") else dflt["ami_owner"]
        )
        _, image = await gather_all(
            self._cached(("type", tgt, itype), lambda: self._instance_type(api, tgt, itype)),
            self._cached(("ami", tgt, ami, owner), lambda: sh.resolve_ami(api, ami, owner)),
        )
        root = int(settings.get("ec2_root_size", 16))
        if root < 1 or root > 16384:
            raise UsageError(f"--ec2-root-size {root}: give a size in GB between 1 and 16384")
        extra = None
        if settings.get("ec2_user_data_file"):
            path = Path(settings["ec2_user_data_file"]).expanduser()
            try:
                extra = path.read_text()
            except OSError as err:
                raise UsageError(f"cannot read --ec2-user-data-file {path}: {err}") from err
        tags: dict[str, str] = {}
        for item in settings.get("ec2_tags") or ():
            key, sep, value = str(item).partition("=")
            if not sep or not key or key.startswith(("aws:", "flotte:")):
                raise UsageError(f"--ec2-tags {item!r}: give key=value (not aws:/flotte: keys)")
            tags[key] = value
        return {
            "target": tgt,
            "instance_type": itype,
            "image": image,
            "root_size": root,
            "volume_type": settings.get("ec2_volume_type") or "gp3",
            "user_data_extra": extra,
            "tags": tags,
            "ssh_user": settings.get("ec2_ssh_user") or dflt["ssh_user"],
        }

    async def check(self, group: GroupSpec) -> None:
        settings = self._settings(group.options)
        if settings.get("ec2_keypair_name") and not settings.get("ec2_ssh_keypath"):
            raise UsageError("--ec2-keypair-name needs --ec2-ssh-keypath (its private key)")
        keypath = settings.get("ec2_ssh_keypath")
        if keypath and not Path(keypath).expanduser().exists():
            raise UsageError(f"--ec2-ssh-keypath {keypath} does not exist")
        sh.check_cidrs(list(settings.get("ec2_allowed_cidr") or ()))
        tgt = self._target(settings)
        api = self.api(tgt)
        # The region first: a wrong one makes every other call fail in its own way.
        await self._cached(("region", tgt), lambda: self._validate_region(api, tgt))
        await gather_all(
            self._launch_inputs(settings),
            self._network(api, tgt, settings),
            self._cidrs(settings),
        )

    async def _network(
        self, api: Ec2Api, tgt: cfg.Target, settings: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        found: tuple[str, str | None] = await self._cached(
            (
                "net",
                tgt,
                settings.get("ec2_vpc_id"),
                settings.get("ec2_subnet_id"),
                settings.get("ec2_zone"),
            ),
            lambda: sh.resolve_network(
                api,
                settings.get("ec2_vpc_id"),
                settings.get("ec2_subnet_id"),
                settings.get("ec2_zone"),
                tgt.region,
            ),
        )
        return found

    async def _cidrs(self, settings: Mapping[str, Any]) -> list[str]:
        given = list(settings.get("ec2_allowed_cidr") or ())
        if given:
            return sh.check_cidrs(given)
        url = os.environ.get("FLOTTE_CHECKIP_URL", cfg.CHECKIP_URL)
        found: str = await self._cached(
            ("cidr", url), lambda: asyncio.to_thread(sh.detect_address, url)
        )
        return [found]

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        """Security group, key pair and network of the group (found again on a re-run)."""
        await self.check(group)
        owner = self._owner(group.owner)
        settings = self._settings(group.options)
        tgt = self._target(settings)
        api = self.api(tgt)
        vpc_id, subnet_id = await self._network(api, tgt, settings)
        coe = str(group.options.get("coe") or settings.get("coe") or "swarm")
        cidrs = await self._cidrs(settings)
        # Independent of each other: made at the same time.
        sg, (key_name, key_path, key_ours) = await gather_all(
            sh.ensure_security_group(api, owner, vpc_id, cidrs, group.roles, coe),
            sh.ensure_key_pair(
                api,
                owner,
                self.ctx.home,
                settings.get("ec2_keypair_name"),
                settings.get("ec2_ssh_keypath"),
            ),
        )
        return {
            **tgt.to_dict(),
            "vpc_id": vpc_id,
            "subnet_id": subnet_id,
            "security_group_id": sg,
            "key_name": key_name,
            "key_path": key_path,
            "key_generated": key_ours and not settings.get("ec2_ssh_keypath"),
        }

    # -- create ----------------------------------------------------------------------

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        """One node; calls that arrive together are made by one ``create_many``."""
        key = json.dumps(shared, sort_keys=True, default=str)
        return await self._creates.submit(key, (spec, shared))

    async def _create_batch(
        self, key: Hashable, items: list[tuple[NodeSpec, Mapping[str, Any]]]
    ) -> list[NodeRecord]:
        return await self.create_many([spec for spec, _ in items], items[0][1])

    async def create_many(
        self, specs: list[NodeSpec], shared: Mapping[str, Any]
    ) -> list[NodeRecord]:
        """Make (or adopt) every node in ``specs``: one RunInstances per launch config."""
        if not specs:
            return []
        api = self._api_for(shared)
        # Tags every node of the batch has; a node's own (flotte:machine of a lone machine
        # in a mixed batch) are added with its name.
        group_tags = dict(
            set.intersection(*(set(sh.owner_tags(self._owner(s.owner)).items()) for s in specs))
        )
        launches: dict[str, Launch] = {}
        settings_of: dict[str, dict[str, Any]] = {}
        for spec in specs:
            settings = self._settings(spec.options)
            settings_of[spec.name] = settings
            inputs = await self._launch_inputs({**settings, **cfg.target_options(shared)})
            params = self._run_params(inputs, group_tags, shared, settings)
            digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
            launches.setdefault(digest, Launch(digest, params, inputs)).specs.append(spec)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # claiming unnamed instances must not race in this process
            chosen = await self._claim(api, launches, group_tags)
        timeout = float(self._settings().get("ec2_active_timeout") or 300)
        # A node the user stopped is adopted as it is: creating does not start it.
        resting = {
            i["InstanceId"]: i
            for i in chosen.values()
            if i["State"]["Name"] in ("stopped", "stopping")
        }
        waiting = [i["InstanceId"] for i in chosen.values() if i["InstanceId"] not in resting]
        running = {**resting, **await self._wait(api, waiting, "running", timeout)}

        async def finish(spec: NodeSpec, launch: Launch) -> NodeRecord:
            inst = running[chosen[spec.name]["InstanceId"]]
            settings = settings_of[spec.name]
            record = self._record(spec, inst, shared, settings, launch.inputs)
            if settings.get("ec2_elastic_ip"):
                record = await self._elastic_ip(api, spec, record)
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
        live = await self._instances(api, group_tags)
        # A node whose instance is being terminated is missing, not adoptable.
        by_node = {
            sh.tags_of(i)[NODE_TAG]: i
            for i in live
            if sh.tags_of(i).get(NODE_TAG) and i["State"]["Name"] != "shutting-down"
        }
        unnamed: dict[str, list[dict[str, Any]]] = {}
        for inst in live:
            tags = sh.tags_of(inst)
            adoptable = inst["State"]["Name"] not in ("shutting-down", "stopping")
            if NODE_TAG not in tags and inst["InstanceId"] not in self._claimed and adoptable:
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
            self._claimed.update(inst["InstanceId"] for _, inst in pairs)
            surplus = [i["InstanceId"] for i in pool[len(missing) :]]
            if surplus:
                await self._terminate(api, surplus)
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
        mine = {i["InstanceId"] for i in pool} | self._claimed
        found = await self._instances(api, {**group_tags, LAUNCH_TAG: launch.digest})
        strays = [
            i["InstanceId"]
            for i in found
            if i["InstanceId"] not in mine and NODE_TAG not in sh.tags_of(i)
        ]
        if strays:
            await self._terminate(api, strays)

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
        own = {
            k: v for k, v in sh.owner_tags(self._owner(spec.owner)).items() if k not in group_tags
        }
        tags = {
            **own,
            "Name": spec.name,
            NODE_TAG: spec.name,
            "flotte:role": str(spec.role),
            "flotte:nodegroup": spec.group,
        }
        await api.call(
            "create_tags", eventual=True, Resources=[inst["InstanceId"]], Tags=sh.tag_list(tags)
        )

    async def _describe(self, api: Ec2Api, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in sw.chunks(ids):
            reservations = await api.pages(
                "describe_instances", "Reservations", InstanceIds=chunk, eventual=True
            )
            for r in reservations:
                for inst in r["Instances"]:
                    out[inst["InstanceId"]] = inst
        return out

    async def _wait(
        self,
        api: Ec2Api,
        ids: list[str],
        want: str,
        timeout: float,
    ) -> dict[str, dict[str, Any]]:
        """Poll DescribeInstances for all ``ids`` at once until each is ``want``."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self._describe(api, ids)
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

    def _record(
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
            driver=self.name,
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
                "owner": sh.owner_tags(self._owner(spec.owner)),
            },
        )

    async def _elastic_ip(self, api: Ec2Api, spec: NodeSpec, record: NodeRecord) -> NodeRecord:
        tags = {**sh.owner_tags(self._owner(spec.owner)), NODE_TAG: spec.name}
        address = await sh.ensure_elastic_ip(api, tags, record.provider_id)
        ip = address["PublicIp"]
        addresses = [ip, *[a for a in record.addresses if a != ip]]
        if record.data.get("private_address_only"):
            addresses = [record.addresses[0], *[a for a in addresses if a != record.addresses[0]]]
        data = {**record.data, "allocation_id": address["AllocationId"], "elastic_ip": ip}
        return dataclasses.replace(record, addresses=addresses, data=data)

    # -- provision and endpoint ------------------------------------------------------

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        """The SSH provisioner of every driver: it waits for sshd and for cloud-init."""
        from flotte.provision.booted import provision_booted

        endpoint = self.endpoint(node)
        owner = {k: v for k, v in node.data.get("owner", {}).items() if v}
        await provision_booted(
            node,
            endpoint,
            engine,
            self.ctx.ca,
            # "running" comes well before sshd listens on a fresh instance.
            wait=float(node.data.get("active_timeout") or 300),
            known_hosts=self.ctx.known_hosts,
            owner=owner,
            progress=self.ctx.progress,
            install_url=spec.options.get("engine_install_url") or None,
        )
        return endpoint

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return Endpoint(
            host=node.address,
            ssh_user=node.data.get("ssh_user") or "admin",
            ssh_key=node.data.get("key_path"),
        )

    # -- lifecycle -------------------------------------------------------------------

    async def _ids(self, api: Ec2Api, node: NodeRecord) -> list[str]:
        if node.provider_id:
            return [node.provider_id]
        owner = {"flotte:owner": self.ctx.installation, NODE_TAG: node.name}
        return [i["InstanceId"] for i in await self._instances(api, owner)]

    async def state(self, node: NodeRecord) -> NodeState:
        api = self._api_for(node.data)
        ids = await self._ids(api, node)
        if not ids:
            return NodeState.NOT_FOUND
        try:
            found = await self._describe(api, ids)
        except UsageError:  # InvalidInstanceID.NotFound long after creation: it is gone
            return NodeState.NOT_FOUND
        inst = found.get(ids[0])
        return STATES.get(inst["State"]["Name"], NodeState.UNKNOWN) if inst else NodeState.NOT_FOUND

    async def _one(self, node: NodeRecord) -> tuple[Ec2Api, str]:
        api = self._api_for(node.data)
        ids = await self._ids(api, node)
        if not ids:
            raise NotFound(f"instance of {node.name} not found in {api.where}")
        return api, ids[0]

    async def start(self, node: NodeRecord) -> NodeRecord:
        api, iid = await self._one(node)
        await api.call("start_instances", InstanceIds=[iid])
        inst = (await self._wait(api, [iid], "running", 300))[iid]
        # Without an Elastic IP the public address changes on every start.
        public = node.data.get("elastic_ip") or inst.get("PublicIpAddress") or ""
        private = inst.get("PrivateIpAddress") or ""
        first = private if node.data.get("private_address_only") else (public or private)
        addresses = [a for a in dict.fromkeys([first, public, private]) if a]
        return dataclasses.replace(node, addresses=addresses)

    async def stop(self, node: NodeRecord) -> None:
        api, iid = await self._one(node)
        await api.call("stop_instances", InstanceIds=[iid])
        await self._wait(api, [iid], "stopped", 600)

    async def kill(self, node: NodeRecord) -> None:
        api, iid = await self._one(node)
        await api.call("stop_instances", InstanceIds=[iid], Force=True)
        await self._wait(api, [iid], "stopped", 600)

    async def restart(self, node: NodeRecord) -> NodeRecord:
        api, iid = await self._one(node)
        await api.call("reboot_instances", InstanceIds=[iid])
        return node  # a reboot keeps the addresses

    async def snapshot(self, node: NodeRecord, name: str) -> str:
        """An AMI of the node (CreateImage); tagged as flotte's but kept by ``sweep``."""
        api, iid = await self._one(node)
        tags = {"flotte:owner": self.ctx.installation, "flotte:snapshot-of": node.name}
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

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        """Terminate the node's instance (and release its Elastic IP); gone is fine."""
        await self._removes.submit(json.dumps(cfg.target_options(node.data)), node)

    async def _remove_batch(self, key: Hashable, nodes: list[NodeRecord]) -> list[None]:
        await self.remove_many(nodes)
        return [None] * len(nodes)

    async def remove_many(self, nodes: list[NodeRecord]) -> None:
        """Remove nodes of one target with one TerminateInstances."""
        if not nodes:
            return
        api = self._api_for(nodes[0].data)
        await asyncio.gather(
            *(
                sw.release_address(api, {"AllocationId": n.data["allocation_id"]})
                for n in nodes
                if n.data.get("allocation_id")
            )
        )
        found = await asyncio.gather(*(self._ids(api, n) for n in nodes))
        ids = [iid for group in found for iid in group]
        if ids:
            await self._terminate(api, ids)
        self._claimed.difference_update(ids)

    async def _terminate(self, api: Ec2Api, ids: list[str]) -> None:
        await sw.terminate(api, ids)

    async def _instances(self, api: Ec2Api, tags: dict[str, str]) -> list[dict[str, Any]]:
        return await sw.instances(api, tags)

    # -- release, leftovers, sweep ---------------------------------------------------

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        """Sweep the group: strays of a killed run, then the security group and key pair."""
        if shared.get("region"):
            api = self._api_for(shared)
        else:  # prepare did not finish: if the target itself is wrong, nothing was made
            try:
                tgt = self._target(self._settings(group.options))
                api = self.api(tgt)
                await self._cached(("region", tgt), lambda: self._validate_region(api, tgt))
            except UsageError:
                return
        owner = self._owner(group.owner)
        await sw.sweep(api, owner, self.ctx.home, poll=self.poll_interval)

    async def leftovers(self, owner: Owner) -> list[str]:
        api = self.api(self._target(self._settings()))
        return sw.describe(await sw.owned(api, self._owner(owner)))

    async def sweep(self, owner: Owner) -> int:
        api = self.api(self._target(self._settings()))
        return await sw.sweep(api, self._owner(owner), self.ctx.home, poll=self.poll_interval)


__all__ = ["EC2Driver"]
