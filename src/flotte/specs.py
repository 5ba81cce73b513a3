"""Desired state as typed values: cluster templates, clusters and their node groups.

Every command that changes infrastructure says what it wants as a ``ClusterSpec``;
the planner compares it with what is recorded. A lone machine is a cluster of one node
group of one node, without a COE. Field names are Magnum's (ClusterTemplate, Cluster,
NodeGroup), so a template, a spec file and the API read the same.

Driver options are merged once, here: template ``driver_options`` and Magnum fields
(``image_id``, ``flavor_id``...), then the cluster's flags, then the node group's
options and fields, then per node (``master_flavor_id`` for masters). Where a node
goes on existing hosts is a typed field (``NodeGroupSpec.hosts``), not an option.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flotte.errors import UsageError
from flotte.models import EngineOptions, Role, check_name

MASTER_GROUP = "default-master"
WORKER_GROUP = "default-worker"
MACHINE_GROUP = "default"
COES = ("swarm", "swarm-mode")  # Magnum's names; both form a Docker Swarm mode cluster
MAX_NODE_NAME = 63  # a DNS label: nodes' hostnames are their names


class Spec(BaseModel):
    """Strict: unknown fields and wrong types are errors, values are immutable."""

    # built on first validation: a listing validates ClusterSpecs only (about 15 ms of
    # CPU saved; importing pydantic itself, ~0.25 s, is what the specs cost listings)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)


class TemplateSpec(Spec):
    """Magnum's ClusterTemplate, plus the flotte driver and its options."""

    coe: str = "swarm"
    driver: str = "local"
    image_id: str | None = None
    flavor_id: str | None = None
    master_flavor_id: str | None = None
    keypair_id: str | None = None
    external_network_id: str | None = None
    fixed_network: str | None = None
    fixed_subnet: str | None = None
    dns_nameserver: str | None = None
    docker_volume_size: int | None = Field(default=None, ge=1)
    docker_storage_driver: str | None = None
    network_driver: str | None = "overlay"
    labels: dict[str, str] = {}
    insecure_registry: str | None = None
    registry_mirrors: tuple[str, ...] = ()
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None
    tls_disabled: bool = False
    public: bool = False
    floating_ip_enabled: bool = True
    master_lb_enabled: bool = False
    server_type: Literal["vm", "bm"] = "vm"
    master_count: int = Field(default=1, ge=1)
    node_count: int = Field(default=1, ge=0)
    driver_options: dict[str, Any] = {}

    @field_validator("coe")
    @classmethod
    def _coe(cls, value: str) -> str:
        return check_coe(value)

    def engine(self, labels: Mapping[str, str] | None = None) -> EngineOptions:
        """Engine options the template implies (registry, storage driver, proxies, labels)."""
        env = tuple(
            f"{key.upper()}={value}"
            for key, value in (
                ("http_proxy", self.http_proxy),
                ("https_proxy", self.https_proxy),
                ("no_proxy", self.no_proxy),
            )
            if value
        )
        merged = {**self.labels, **(labels or {})}
        return EngineOptions(
            labels=tuple(f"{k}={v}" for k, v in merged.items()),
            insecure_registries=(self.insecure_registry,) if self.insecure_registry else (),
            registry_mirrors=self.registry_mirrors,
            env=env,
            storage_driver=self.docker_storage_driver,
        )


def _valid_name(kind: str, value: str) -> str:
    try:
        return check_name(kind, value)
    except UsageError as err:  # pydantic reports ValueErrors with the field's location
        raise ValueError(err.message) from None


def check_coe(value: str) -> str:
    if value not in COES:
        raise ValueError(f"unknown COE {value!r}: flotte forms {', '.join(COES)}")
    return value


class NodeGroupSpec(Spec):
    """Nodes of one role made the same way (Magnum's NodeGroup)."""

    name: str
    role: Literal["master", "worker", "machine"] = "worker"
    node_count: int = Field(default=1, ge=0)
    min_node_count: int = Field(default=0, ge=0)
    max_node_count: int | None = Field(default=None, ge=1)
    driver: str | None = None  # None: the cluster's driver
    flavor_id: str | None = None
    image_id: str | None = None
    docker_volume_size: int | None = Field(default=None, ge=1)
    labels: dict[str, str] = {}
    hosts: tuple[str, ...] = ()  # existing hosts the nodes go to (ssh), in order
    options: dict[str, Any] = {}  # driver options of this group only

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name("node group", value)

    @model_validator(mode="after")
    def _counts(self) -> NodeGroupSpec:
        low, high = self.min_node_count, self.max_node_count
        if high is not None and low > high:
            raise ValueError(f"min_node_count {low} is above max_node_count {high}")
        if self.node_count < low or (high is not None and self.node_count > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise ValueError(f"node_count {self.node_count} is outside {bounds}")
        if self.role == "master" and self.node_count < 1:
            raise ValueError("a master node group needs at least 1 node")
        return self

    @property
    def node_role(self) -> Role:
        return {"master": Role.MANAGER, "worker": Role.WORKER}.get(self.role, Role.MACHINE)


class OverflowSpec(Spec):
    """Workers spread over node groups in order: each fills until its provider refuses
    (its max_node_count, its quota, a create refused for quota or capacity, or the
    budget), then the next takes the rest. Shrinking empties the last group first."""

    nodegroups: tuple[str, ...] = Field(min_length=1)
    node_count: int = Field(ge=0)  # workers over all these groups together
    max_eur_day: float | None = Field(default=None, gt=0)  # the whole cluster's budget

    @field_validator("max_eur_day")
    @classmethod
    def _budget(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of EUR per day")
        return value


class ClusterSpec(Spec):
    """Everything a cluster (or a lone machine) should be."""

    name: str
    kind: Literal["cluster", "machine"] = "cluster"
    template: str | None = None
    coe: str | None = "swarm"
    driver: str
    options: dict[str, Any] = {}  # the cluster's driver options, secrets left out
    engine: EngineOptions = EngineOptions()
    labels: dict[str, str] = {}
    create_timeout: float = Field(default=60.0, gt=0)  # minutes, Magnum's field
    no_provision: bool = False
    nodegroups: tuple[NodeGroupSpec, ...]
    template_fields: dict[str, Any] = {}  # the Magnum fields the template gave (for show)
    overflow: OverflowSpec | None = None  # where workers go when a provider is full

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _valid_name("cluster", value)

    @field_validator("create_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of minutes")
        return value

    @model_validator(mode="after")
    def _groups(self) -> ClusterSpec:
        names = [g.name for g in self.nodegroups]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"node group {sorted(dup)[0]!r} is given twice")
        if self.kind == "machine":
            if len(self.nodegroups) != 1 or self.nodegroups[0].node_count != 1:
                raise ValueError("a machine is one node group of one node")
            return self
        if self.coe is not None:
            check_coe(self.coe)
        if not any(g.role == "master" for g in self.nodegroups):
            raise ValueError("a cluster needs a master node group with at least 1 node")
        if any(g.role == "machine" for g in self.nodegroups):
            raise ValueError("node group roles are master or worker")
        if self.overflow is not None:
            _check_overflow(self.overflow, self.nodegroups)
        for g in self.nodegroups:
            longest = node_name(self.name, g.name, max(g.node_count, g.max_node_count or 0, 99))
            if len(longest) > MAX_NODE_NAME:
                raise ValueError(
                    f"node names like {longest!r} would pass {MAX_NODE_NAME} characters: "
                    "use a shorter cluster or node group name"
                )
        return self

    # -- reading -------------------------------------------------------------------
    def group(self, name: str) -> NodeGroupSpec:
        for g in self.nodegroups:
            if g.name == name:
                return g
        raise KeyError(name)

    def has_group(self, name: str) -> bool:
        return any(g.name == name for g in self.nodegroups)

    @property
    def master_count(self) -> int:
        return sum(g.node_count for g in self.nodegroups if g.role == "master")

    @property
    def node_count(self) -> int:
        return sum(g.node_count for g in self.nodegroups if g.role != "master")

    def driver_of(self, group: NodeGroupSpec) -> str:
        return group.driver or self.driver

    # -- changing (every change returns a new, validated spec) -----------------------
    def with_group(self, group: NodeGroupSpec) -> ClusterSpec:
        """This spec with ``group`` added, or replacing the group of the same name."""
        groups = [g for g in self.nodegroups if g.name != group.name]
        at = next((i for i, g in enumerate(self.nodegroups) if g.name == group.name), None)
        groups.insert(len(groups) if at is None else at, group)
        spec: ClusterSpec = _rebuild(self, {"nodegroups": groups})
        return spec

    def without_group(self, name: str) -> ClusterSpec:
        spec: ClusterSpec = _rebuild(
            self, {"nodegroups": [g for g in self.nodegroups if g.name != name]}
        )
        return spec

    def resized(self, group: str, count: int) -> ClusterSpec:
        g = self.group(group)
        return self.with_group(_rebuild(g, {"node_count": count}))


def _check_overflow(overflow: OverflowSpec, groups: tuple[NodeGroupSpec, ...]) -> None:
    roles = {g.name: g.role for g in groups}
    seen: set[str] = set()
    for name in overflow.nodegroups:
        if name not in roles:
            known = ", ".join(n for n, r in roles.items() if r == "worker")
            raise ValueError(f"overflow names node group {name!r}, which does not exist ({known})")
        if roles[name] != "worker":
            raise ValueError(f"overflow group {name!r} is a {roles[name]} group: list workers")
        if name in seen:
            raise ValueError(f"overflow names node group {name!r} twice")
        seen.add(name)


def _rebuild(model: Any, changes: dict[str, Any]) -> Any:
    """A validated copy of ``model`` with ``changes``; a problem is one UsageError line."""
    from pydantic import ValidationError

    try:
        return type(model).model_validate({**model.model_dump(), **changes})
    except ValidationError as err:
        raise UsageError(validation_message(err)) from None


def node_name(cluster: str, group: str, index: int) -> str:
    """Node names: ``c-master-0``, ``c-node-0`` for the default groups, ``c-GROUP-0`` else."""
    if group == MACHINE_GROUP:
        return cluster
    part = {MASTER_GROUP: "master", WORKER_GROUP: "node"}.get(group, group)
    return f"{cluster}-{part}-{index}"


def default_groups(
    master_count: int,
    node_count: int,
    *,
    master_hosts: tuple[str, ...] = (),
    worker_hosts: tuple[str, ...] = (),
    master_options: Mapping[str, Any] | None = None,
) -> tuple[NodeGroupSpec, ...]:
    """Magnum's two default node groups."""
    return (
        NodeGroupSpec(
            name=MASTER_GROUP,
            role="master",
            node_count=master_count,
            min_node_count=1,
            hosts=master_hosts,
            options=dict(master_options or {}),
        ),
        NodeGroupSpec(name=WORKER_GROUP, role="worker", node_count=node_count, hosts=worker_hosts),
    )


def machine_spec(
    name: str,
    driver: str,
    options: Mapping[str, Any],
    engine: EngineOptions,
    *,
    host: str | None = None,
    no_provision: bool = False,
) -> ClusterSpec:
    """A lone Docker host: one node group of one node, no COE."""
    group = NodeGroupSpec(
        name=MACHINE_GROUP, role="machine", node_count=1, hosts=(host,) if host else ()
    )
    return ClusterSpec(
        name=name,
        kind="machine",
        coe=None,
        driver=driver,
        options=dict(options),
        engine=engine,
        no_provision=no_provision,
        nodegroups=(group,),
    )


def node_options(
    spec: ClusterSpec, group: NodeGroupSpec, fields: Mapping[str, str]
) -> dict[str, Any]:
    """The one merged mapping of driver options for the nodes of ``group``.

    ``fields`` maps a Magnum field (``flavor_id``, ``image_id``, ``docker_volume_size``)
    to the driver option that takes it. Later layers win: cluster, then node group
    options, then the node group's own Magnum fields.
    """
    out = dict(spec.options) if spec.driver_of(group) == spec.driver else {}
    out.update(group.options)
    for field_name in ("flavor_id", "image_id", "docker_volume_size"):
        value = getattr(group, field_name)
        key = fields.get(field_name)
        if value is not None and key:
            out[key] = value
    return out


def validation_message(err: Exception) -> str:
    """One line from a pydantic ValidationError: ``field: message`` of its first error."""
    from pydantic import ValidationError

    if not isinstance(err, ValidationError):
        return str(err)
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"
