"""Values shared by every layer: what a node should be, what it became, how to reach it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flotte.errors import UsageError

# Docker-machine accepted [a-zA-Z0-9][a-zA-Z0-9.-]*; cluster and node names also end up
# in container names, DNS labels and cloud resource names, so be stricter.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid machine/cluster/template name, else raise UsageError."""
    if not _NAME.match(name or ""):
        raise UsageError(
            f"invalid {kind} name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


class Role(StrEnum):
    MACHINE = "machine"  # a lone Docker host
    MANAGER = "manager"
    WORKER = "worker"


class NodeState(StrEnum):
    """docker-machine's machine states."""

    RUNNING = "Running"
    STOPPED = "Stopped"
    STARTING = "Starting"
    STOPPING = "Stopping"
    ERROR = "Error"
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class EngineOptions:
    """How dockerd is configured on a node (docker-machine's ``--engine-*`` flags)."""

    opts: tuple[str, ...] = ()  # "key=value" or "flag": extra dockerd command-line options
    labels: tuple[str, ...] = ()  # "key=value"
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value" in dockerd's environment
    storage_driver: str | None = None
    tls_sans: tuple[str, ...] = ()
    # The user's consent (--insecure-i-know) to opts that change TLS or where dockerd
    # listens; recorded, so re-provisioning keeps honouring it.
    insecure: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "opts": list(self.opts),
            "labels": list(self.labels),
            "insecure_registries": list(self.insecure_registries),
            "registry_mirrors": list(self.registry_mirrors),
            "env": list(self.env),
            "storage_driver": self.storage_driver,
            "tls_sans": list(self.tls_sans),
            "insecure": self.insecure,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EngineOptions:
        data = data or {}
        return cls(
            opts=tuple(data.get("opts", ())),
            labels=tuple(data.get("labels", ())),
            insecure_registries=tuple(data.get("insecure_registries", ())),
            registry_mirrors=tuple(data.get("registry_mirrors", ())),
            env=tuple(data.get("env", ())),
            storage_driver=data.get("storage_driver"),
            tls_sans=tuple(data.get("tls_sans", ())),
            insecure=bool(data.get("insecure", False)),
        )


# The one spelling of ownership marks, used by every driver: Docker labels, OpenStack
# metadata / Neutron tags and descriptions, EC2 tags. Colons are legal in all of them.
OWNER_KEY = "flotte:owner"  # the installation id
CLUSTER_KEY = "flotte:cluster"
MACHINE_KEY = "flotte:machine"
NODE_KEY = "flotte:node"
GROUP_KEY = "flotte:nodegroup"
ROLE_KEY = "flotte:role"


@dataclass(frozen=True)
class Owner:
    """Who owns a cloud resource; written as labels/tags on everything flotte makes."""

    cluster: str | None = None
    machine: str | None = None
    installation: str = ""  # one id per FLOTTE_HOME, so two installations never adopt each other's

    def tags(self, **extra: str | None) -> dict[str, str]:
        """The owner marks, plus ``node=``, ``nodegroup=``, ``role=`` when given."""
        out = {OWNER_KEY: self.installation} if self.installation else {}
        if self.cluster:
            out[CLUSTER_KEY] = self.cluster
        if self.machine:
            out[MACHINE_KEY] = self.machine
        keys = {"node": NODE_KEY, "nodegroup": GROUP_KEY, "role": ROLE_KEY}
        for name, value in extra.items():
            if value:
                out[keys[name]] = value
        return out

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Owner:
        return cls(
            cluster=tags.get(CLUSTER_KEY) or None,
            machine=tags.get(MACHINE_KEY) or None,
            installation=tags.get(OWNER_KEY, ""),
        )

    @property
    def scope(self) -> str:
        """``cluster:NAME`` or ``machine:NAME``: the journal's and the lock's name."""
        return f"cluster:{self.cluster}" if self.cluster else f"machine:{self.machine}"


@dataclass(frozen=True)
class NodeSpec:
    """What one node should be: the planner's word to a driver. ``name`` is unique.

    ``options`` is the one merged mapping of driver options for this node (template,
    cluster, node group, node); ``host`` is where the node goes when the driver places
    nodes on existing hosts (ssh: ``[user@]host[:port]``), never a driver option.
    """

    name: str
    role: Role
    owner: Owner
    driver: str
    options: Mapping[str, Any] = field(default_factory=dict)
    engine: EngineOptions = field(default_factory=EngineOptions)
    group: str = "default"
    index: int = 0
    host: str | None = None

    def tags(self) -> dict[str, str]:
        """Owner marks of this node's own resources."""
        return self.owner.tags(node=self.name, nodegroup=self.group, role=self.role.value)


@dataclass
class NodeRecord:
    """What a driver made for a node; ``data`` is the driver's own, stored as JSON."""

    name: str
    driver: str
    provider_id: str = ""
    addresses: list[str] = field(default_factory=list)  # first one is the address clients use
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.addresses[0] if self.addresses else ""

    @property
    def cluster_address(self) -> str:
        """Where the other nodes of a cluster reach this one.

        Cloud nodes have a private (fixed) address beside the public one clients use;
        security groups open cluster ports between members' private addresses only.
        """
        return str(self.data.get("private_address") or self.address)


# The variables that point the docker CLI at one engine, docker-machine's names: what
# ``machine env`` exports and ``env -u`` unsets. DOCKER_MACHINE_NAME set says the others
# name a machine's engine (not the one local machines run on).
DOCKER_ENV = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME")


@dataclass(frozen=True)
class Endpoint:
    """How to reach a node: its Docker engine over TLS, and a shell."""

    host: str
    docker_port: int = 2376
    ssh_port: int = 22
    ssh_user: str = "root"
    ssh_key: str | None = None  # path to the private key
    # Client TLS material for this engine (ca.pem, cert.pem, key.pem); None: the
    # installation's own CA and client certificate. Machines imported from
    # docker-machine keep their own; flotte serve gives each cluster its own CA.
    tls_dir: str | None = None

    @property
    def docker_url(self) -> str:
        return f"tcp://{self.host}:{self.docker_port}"
