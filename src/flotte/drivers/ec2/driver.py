"""EC2-API clouds (AWS, 3DS Outscale) through boto3.

A group (one machine, or one cluster) shares a security group and a key pair
(:mod:`.resources`); its nodes are instances (:mod:`.nodes`), launched many per
RunInstances call (:mod:`.launch`). Parallel ``create``/``remove`` calls of one plan are
gathered into one batch (:mod:`.batch`); every call is retried and paced
(:mod:`.connection`, :mod:`.pacing`).

Nothing leaks: ``sweep`` finds instances, Elastic IPs, volumes, key pairs and security
groups by their ``flotte:*`` tags (:mod:`.sweep`), and ``release`` is a sweep of the group.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flotte.drivers.base import Capabilities, Driver, DriverContext, GroupSpec, SSHAccess
from flotte.drivers.batch import Batcher, gather_all
from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2 import quota
from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2 import sweep as sw
from flotte.drivers.ec2.connection import Clients, Ec2Api
from flotte.drivers.ec2.launch import Launcher
from flotte.drivers.ec2.lookups import Lookups
from flotte.drivers.ec2.nodes import Nodes
from flotte.errors import UsageError
from flotte.models import Endpoint, NodeRecord, NodeSpec, NodeState, Owner
from flotte.provision.report import normal_marks


class EC2Driver(Driver):
    """Docker hosts on AWS or Outscale instances (``-d ec2``)."""

    name = "ec2"
    description = "EC2-API clouds: AWS, 3DS Outscale (boto3)"
    capabilities = Capabilities(snapshot=True, max_parallel=16, self_paced=True)
    options = cfg.OPTIONS
    # A site is a cloud, region and VPC: groups differing in one share no private network.
    site_options = ("ec2_cloud", "ec2_endpoint_url", "ec2_region", "ec2_vpc_id")
    # Other sites reach an instance at its public address, which this option turns off.
    private_options = ("ec2_private_address_only",)

    def __init__(self, ctx: DriverContext) -> None:
        super().__init__(ctx)
        # ctx.client: a boto3 EC2 client handed in (tests, embedding); None: one is
        # made per target from the options (profile, AWS_* variables, keys)
        self.conn = Clients(ctx, ctx.client, self.capabilities.max_parallel)
        self.lookups = Lookups(self.conn)
        self.nodes = Nodes(self.conn, self.name)
        self.launcher = Launcher(self.conn, self.lookups, self.nodes)
        # Parallel create()/remove() calls of one plan become one RunInstances /
        # TerminateInstances (see batch).
        self._creates: Batcher[Hashable, tuple[NodeSpec, Mapping[str, Any]], NodeRecord] = Batcher(
            self._create_batch, 0.05, serial=False
        )
        self._removes: Batcher[Hashable, NodeRecord, None] = Batcher(
            self._remove_batch, 0.05, serial=False
        )

    @property
    def poll_interval(self) -> float:
        """Seconds between DescribeInstances polls (tests shorten it)."""
        return self.nodes.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self.nodes.poll_interval = value

    def api(self, tgt: cfg.Target) -> Ec2Api:
        return self.conn.api(tgt)

    def api_calls(self) -> Counter[str]:
        """Logical API calls by action made through this driver (for benchmarks)."""
        return self.conn.api_calls()

    # -- check and prepare -----------------------------------------------------------

    async def check(self, group: GroupSpec) -> None:
        settings = self.conn.settings(group.options)
        if settings.get("ec2_keypair_name") and not settings.get("ec2_ssh_keypath"):
            raise UsageError("--ec2-keypair-name needs --ec2-ssh-keypath (its private key)")
        keypath = settings.get("ec2_ssh_keypath")
        if keypath and not Path(keypath).expanduser().exists():
            raise UsageError(f"--ec2-ssh-keypath {keypath} does not exist")
        sh.check_cidrs(list(settings.get("ec2_allowed_cidr") or ()))
        tgt = self.conn.target(settings)
        api = self.conn.api(tgt)
        # The region first: a wrong one makes every other call fail in its own way.
        await self.lookups.cached(("region", tgt), lambda: self.lookups.validate_region(api, tgt))
        # Node groups may use another instance type or image: each distinct one is checked.
        per_node = [self.conn.settings(group.options, n.options) for n in group.nodes]
        await gather_all(
            self.lookups.launch_inputs(settings),
            *(
                self.lookups.launch_inputs({**s, **cfg.target_options(tgt.to_dict())})
                for s in per_node
            ),
            self.lookups.network(api, tgt, settings),
            self.lookups.cidrs(settings),
        )
        # What does not fit the account is refused now, before anything is made.
        wanting = [
            n.name for n, s in zip(group.nodes, per_node, strict=True) if s.get("ec2_elastic_ip")
        ]
        await quota.check_elastic_ips(api, self.ctx.installation, wanting)

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        """Security group, key pair and network of the group (found again on a re-run)."""
        await self.check(group)
        owner = self.conn.owner(group.owner)
        settings = self.conn.settings(group.options)
        tgt = self.conn.target(settings)
        api = self.conn.api(tgt)
        vpc_id, subnet_id = await self.lookups.network(api, tgt, settings)
        coe = str(group.options.get("coe") or settings.get("coe") or "swarm")
        cidrs = await self.lookups.cidrs(settings)
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
            # keys given as flags or a file: saved once the group exists, gone with it
            "credentials_file": self.conn.save_keys(tgt, owner),
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
        return await self.launcher.create_many(specs, shared)

    # -- provision and endpoint ------------------------------------------------------

    def ssh_access(self, spec: NodeSpec, node: NodeRecord) -> SSHAccess:
        return SSHAccess(
            endpoint=self.endpoint(node),
            # "running" comes well before sshd listens on a fresh instance.
            wait=float(node.data.get("active_timeout") or 300),
            install_url=spec.options.get("engine_install_url") or None,
            marks=normal_marks(node.data.get("owner") or {}) or spec.tags(),
        )

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return Endpoint(
            host=node.address,
            ssh_user=node.data.get("ssh_user") or "admin",
            ssh_key=node.data.get("key_path"),
        )

    # -- lifecycle -------------------------------------------------------------------

    async def state(self, node: NodeRecord) -> NodeState:
        return await self.nodes.state(node)

    async def start(self, node: NodeRecord) -> NodeRecord:
        return await self.nodes.start(node)

    async def stop(self, node: NodeRecord) -> None:
        await self.nodes.stop(node)

    async def kill(self, node: NodeRecord) -> None:
        await self.nodes.kill(node)

    async def restart(self, node: NodeRecord) -> NodeRecord:
        return await self.nodes.restart(node)

    async def snapshot(self, node: NodeRecord, name: str) -> str:
        """An AMI of the node (CreateImage); tagged as flotte's but kept by ``sweep``."""
        return await self.nodes.snapshot(node, name)

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        """Terminate the node's instance (and release its Elastic IP); gone is fine."""
        await self._removes.submit(json.dumps(cfg.target_options(node.data)), node)

    async def _remove_batch(self, key: Hashable, nodes: list[NodeRecord]) -> list[None]:
        await self.nodes.remove_many(nodes)
        return [None] * len(nodes)

    async def open_mesh(
        self, nodes: Sequence[NodeRecord], sources: Sequence[str], port: int
    ) -> None:
        """The mesh port in the security group of the nodes (one per cluster and site)."""
        groups = {
            str(n.data["security_group_id"]): n for n in nodes if n.data.get("security_group_id")
        }
        for group_id, node in groups.items():
            api = self.conn.api_for(node.data)
            await sh.sync_mesh_ingress(api, group_id, list(sources), port)

    # -- release, leftovers, sweep ---------------------------------------------------

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        """Sweep the group: strays of a killed run, then the security group and key pair."""
        if shared.get("region"):
            api = self.conn.api_for(shared)
        else:  # prepare did not finish: if the target itself is wrong, nothing was made
            try:
                tgt = self.conn.target(self.conn.settings(group.options))
                api = self.conn.api(tgt)
                await self.lookups.cached(
                    ("region", tgt), lambda: self.lookups.validate_region(api, tgt)
                )
            except UsageError:
                return
        owner = self.conn.owner(group.owner)
        await sw.sweep(api, owner, self.ctx.home, poll=self.poll_interval)
        self.conn.forget_keys(owner)
        self.nodes.journal.forget(owner)

    async def leftovers(self, owner: Owner) -> list[str]:
        api = self.conn.api(self.conn.target(self.conn.settings()))
        return sw.describe(await sw.owned(api, self.conn.owner(owner)))

    async def sweep(self, owner: Owner) -> int:
        api = self.conn.api(self.conn.target(self.conn.settings()))
        owner = self.conn.owner(owner)
        count = await sw.sweep(api, owner, self.ctx.home, poll=self.poll_interval)
        self.conn.forget_keys(owner)
        self.nodes.journal.forget(owner)
        return count
