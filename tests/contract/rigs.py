"""One rig per driver: how the contract suite builds that driver against its real peer,
and how it counts what the driver made with an independent client.

A rig knows its driver's options, two node-group variants (a flavor, an instance type,
an image or a host list), where its nodes go, and what one node and the group's shared
resources look like to that independent client (the docker SDK, openstacksdk outside
flotte, boto3, a sshd host's own file, the fake cloud's file).
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors

from fixtures import container_exec
from flotte import drivers
from flotte.drivers.base import Driver, DriverContext, GroupSpec
from flotte.models import NODE_KEY, NodeSpec, Owner, Role
from flotte.pki import CertificateAuthority

CHILD = Path(__file__).with_name("child.py")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    """A driver wired to its peer, for one test."""

    kind: str
    home: Path
    options: dict[str, Any]
    variants: dict[str, dict[str, Any]]  # node group -> its own driver options
    shared: Counter[str]  # what a group's shared resources count, by kind
    per_node: Counter[str]  # what one node counts, by kind
    provision: bool = False  # a node exists for the peer once provisioned (ssh)
    # A node can get its TLS engine here (clouds: the suite stays at --no-provision)
    engines: bool = False
    installation: str = field(default_factory=lambda: f"ct{uuid.uuid4().hex[:10]}")
    env: dict[str, str] = field(default_factory=dict)  # for child processes
    # Options check() must refuse, and a word of the one line that says why
    bad: tuple[dict[str, Any], str] = ({}, "")

    # -- building ------------------------------------------------------------------------
    def driver(self) -> Driver:
        """A fresh driver instance: what a new flotte process would make."""
        ctx = DriverContext(
            home=self.home / "machines",
            ca=CertificateAuthority(self.home / "ca").ensure(),
            installation=self.installation,
            options=dict(self.options),
            known_hosts=self.home / "known_hosts",
        )
        return drivers.get(self.kind)(ctx)

    def owner(self, prefix: str) -> Owner:
        return Owner(cluster=f"{prefix}-{uuid.uuid4().hex[:6]}", installation=self.installation)

    def host(self, group: str, index: int) -> str | None:
        """Where node ``index`` of ``group`` goes, for drivers that place nodes on hosts."""
        return None

    def spec(self, owner: Owner, group: str, index: int) -> NodeSpec:
        assert owner.cluster
        return NodeSpec(
            name=f"{owner.cluster}-{group}{index}",
            role=Role.WORKER,
            owner=owner,
            driver=self.kind,
            options={**self.options, **self.variants[group]},
            group=group,
            index=index,
            host=self.host(group, index),
        )

    def group(self, owner: Owner, nodes: list[NodeSpec]) -> GroupSpec:
        assert owner.cluster
        return GroupSpec(
            name=owner.cluster,
            owner=owner,
            options=dict(self.options),
            roles=("cluster", "worker"),
            size=len(nodes),
            nodes=tuple(nodes),
        )

    def expected(self, nodes: int) -> Counter[str]:
        out = Counter({k: v * nodes for k, v in self.per_node.items()})
        if nodes:
            out.update(self.shared)
        return +out

    # -- the independent view ------------------------------------------------------------
    def found(self, owner: Owner) -> Counter[str]:
        """Everything with ``owner``'s marks, by kind, as the peer itself shows it."""
        raise NotImplementedError

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        """node name -> (the peer's id for it, its variant: flavor, type, image, host)."""
        raise NotImplementedError

    def variant(self, group: str) -> str:
        """How ``nodes`` shows the variant of node group ``group``."""
        raise NotImplementedError

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        """node name -> the marks the peer shows on that node (labels, metadata, tags)."""
        raise NotImplementedError

    # -- a child process, to be killed -----------------------------------------------------
    def child(self, owner: Owner, specs: list[NodeSpec]) -> list[str]:
        job = {
            "driver": self.kind,
            "home": str(self.home),
            "installation": self.installation,
            "options": self.options,
            "owner": {"cluster": owner.cluster, "installation": owner.installation},
            "nodes": [
                {
                    "name": s.name,
                    "group": s.group,
                    "index": s.index,
                    "host": s.host,
                    "options": dict(s.options),
                }
                for s in specs
            ],
            "provision": self.provision,
        }
        path = self.home / f"job-{uuid.uuid4().hex[:6]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(job))
        return [sys.executable, str(CHILD), str(path)]

    def child_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT / "src"), **self.env}


# -- local: containers on the local engine, counted with the docker SDK ------------------


@dataclass
class LocalRig(Rig):
    client: Any = None

    def _filters(self, owner: Owner) -> dict[str, list[str]]:
        return {"label": [f"{k}={v}" for k, v in owner.tags().items()]}

    def found(self, owner: Owner) -> Counter[str]:
        f = self._filters(owner)
        out: Counter[str] = Counter()
        out["container"] = len(self._containers(owner))
        out["volume"] = len(self.client.volumes.list(filters=f))
        out["network"] = len(self.client.networks.list(filters=f))
        return +out

    def _containers(self, owner: Owner) -> list[dict[str, Any]]:
        # The engine's list answer as it is: the SDK's list() inspects each container
        # after, and one being created is listed before inspect finds it (NotFound).
        found: list[dict[str, Any]] = self.client.api.containers(
            all=True, filters=self._filters(owner)
        )
        return found

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        out = {}
        for c in self._containers(owner):
            if NODE_KEY not in c["Labels"]:
                continue
            try:  # the image as the create named it (the list shows an ID once re-tagged)
                image = self.client.api.inspect_container(c["Id"])["Config"]["Image"]
            except docker.errors.NotFound:
                continue  # not created yet, for the engine
            out[c["Labels"][NODE_KEY]] = (c["Id"], image)
        return out

    def variant(self, group: str) -> str:
        return str(self.variants[group]["local_image"])

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        found = self._containers(owner)
        return {c["Labels"][NODE_KEY]: dict(c["Labels"]) for c in found if NODE_KEY in c["Labels"]}


# -- ssh: existing hosts, counted by reading each host's owner.json from inside it -------


@dataclass
class SSHRig(Rig):
    start_host: Callable[[], Any] | None = None
    placed: dict[tuple[str, int], Any] = field(default_factory=dict)

    def host(self, group: str, index: int) -> str | None:
        if (group, index) not in self.placed:
            assert self.start_host is not None
            self.placed[(group, index)] = self.start_host()
        return str(self.placed[(group, index)].ip)

    def _marks(self) -> dict[str, dict[str, str]]:
        out = {}
        for h in self.placed.values():
            content = container_exec.read_file(h.container, "/etc/docker/flotte/owner.json")
            if content is not None:
                out[h.ip] = json.loads(content)
        return out

    def found(self, owner: Owner) -> Counter[str]:
        mine = [m for m in self._marks().values() if _has(m, owner.tags())]
        return +Counter({"host": len(mine)})

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        by_ip = {h.ip: group for (group, _), h in self.placed.items()}
        return {
            m[NODE_KEY]: (ip, by_ip[ip]) for ip, m in self._marks().items() if _has(m, owner.tags())
        }

    def variant(self, group: str) -> str:
        return group  # a node group's own host list

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        mine = [m for m in self._marks().values() if _has(m, owner.tags())]
        return {m[NODE_KEY]: m for m in mine if NODE_KEY in m}


# -- openstack: devcloud servers, counted with openstacksdk outside flotte ---------------


@dataclass
class OpenStackRig(Rig):
    conn: Any = None  # an openstack.connection.Connection of the same project
    flavors: dict[str, str] = field(default_factory=dict)  # flavor id -> name

    def _mine(self, text: str | None, owner: Owner) -> bool:
        words = set((text or "").split())
        return all(f"{k}={v}" in words for k, v in owner.tags().items())

    def _servers(self, owner: Owner) -> list[Any]:
        return [
            s
            for s in self.conn.compute.servers(details=True)
            if _has(s.metadata or {}, owner.tags())
        ]

    def found(self, owner: Owner) -> Counter[str]:
        net = self.conn.network
        out: Counter[str] = Counter()
        out["server"] = len(self._servers(owner))
        out["port"] = sum(1 for p in net.ports() if self._mine(p.description, owner))
        out["floating ip"] = sum(1 for f in net.ips() if self._mine(f.description, owner))
        out["security group"] = sum(
            1 for g in net.security_groups() if self._mine(g.description, owner)
        )
        # Key pairs have no description: their name carries the owner (its installation
        # and cluster hashed, as the driver spells it), then the group.
        from flotte.drivers.openstack.marks import name_prefix

        prefix = name_prefix(owner)
        out["key pair"] = sum(1 for k in self.conn.compute.keypairs() if k.name.startswith(prefix))
        return +out

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        out = {}
        for s in self._servers(owner):
            flavor = s.flavor.get("original_name") or self.flavors.get(s.flavor.get("id"), "")
            out[s.metadata[NODE_KEY]] = (s.id, flavor)
        return out

    def variant(self, group: str) -> str:
        return self.flavors[str(self.variants[group]["openstack_flavor_id"])]

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        return {
            s.metadata[NODE_KEY]: dict(s.metadata)
            for s in self._servers(owner)
            if NODE_KEY in (s.metadata or {})
        }


# -- ec2: moto, counted with boto3 -------------------------------------------------------


@dataclass
class EC2Rig(Rig):
    client: Any = None  # a boto3 EC2 client of the same moto server

    def _filters(self, owner: Owner) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{k}", "Values": [v]} for k, v in owner.tags().items()]

    def _instances(self, owner: Owner) -> list[dict[str, Any]]:
        live = ["pending", "running", "stopping", "stopped", "shutting-down"]
        pages = self.client.describe_instances(
            Filters=[*self._filters(owner), {"Name": "instance-state-name", "Values": live}]
        )["Reservations"]
        return [i for r in pages for i in r["Instances"]]

    def found(self, owner: Owner) -> Counter[str]:
        f, c = self._filters(owner), self.client
        out: Counter[str] = Counter()
        out["instance"] = len(self._instances(owner))
        out["volume"] = len(c.describe_volumes(Filters=f)["Volumes"])
        out["elastic ip"] = len(c.describe_addresses(Filters=f)["Addresses"])
        out["key pair"] = len(c.describe_key_pairs(Filters=f)["KeyPairs"])
        out["security group"] = len(c.describe_security_groups(Filters=f)["SecurityGroups"])
        return +out

    def _named(self, owner: Owner) -> list[tuple[str, dict[str, Any]]]:
        """(node name, instance): its node tag, else (nodes launched together carry one
        tag set) its launch's journal entry, by ClientToken and AmiLaunchIndex."""
        from flotte.drivers.ec2.journal import Journal, node_of

        entries = Journal(self.home / "machines").entries(owner)
        named = ((node_of(i, entries), i) for i in self._instances(owner))
        return [(name, i) for name, i in named if name]

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        return {name: (i["InstanceId"], i["InstanceType"]) for name, i in self._named(owner)}

    def variant(self, group: str) -> str:
        return str(self.variants[group]["ec2_instance_type"])

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        return {
            name: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            for name, i in self._named(owner)
        }


# -- fake: the lead's file-backed cloud, counted by reading its file ---------------------


@dataclass
class FakeRig(Rig):
    def _resources(self, owner: Owner) -> list[dict[str, Any]]:
        path = Path(self.options["fake_dir"]) / "cloud.json"
        if not path.exists():
            return []
        data = json.loads(path.read_text())["resources"]
        return [r for r in data.values() if _has(r.get("tags", {}), owner.tags())]

    def found(self, owner: Owner) -> Counter[str]:
        return +Counter(r["kind"] for r in self._resources(owner))

    def nodes(self, owner: Owner) -> dict[str, tuple[str, str]]:
        path = Path(self.options["fake_dir"]) / "cloud.json"
        data = json.loads(path.read_text())["resources"] if path.exists() else {}
        return {
            r["name"]: (rid, str(r.get("flavor")))
            for rid, r in data.items()
            if r["kind"] == "node" and _has(r.get("tags", {}), owner.tags())
        }

    def variant(self, group: str) -> str:
        return str(self.variants[group]["fake_flavor"])

    def marks(self, owner: Owner) -> dict[str, dict[str, str]]:
        return {r["name"]: dict(r["tags"]) for r in self._resources(owner) if r["kind"] == "node"}


def _has(marks: Any, wanted: dict[str, str]) -> bool:
    return isinstance(marks, dict) and all(marks.get(k) == v for k, v in wanted.items())
