"""The typed values the store returns: what is recorded of templates, clusters, node
groups and nodes (a lone machine is a node without a cluster).

Rows never leave the store: every reader gets these frozen values, so nothing above
the state layer depends on column names or JSON shapes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flotte.models import Endpoint, EngineOptions, NodeRecord, Role
from flotte.specs import ClusterSpec, NodeGroupSpec, TemplateSpec
from flotte.state.status import READY, UNKNOWN


@dataclass(frozen=True)
class TemplateRecord:
    name: str
    uuid: str
    spec: TemplateSpec
    project: str | None = None
    created_at: dt.datetime | None = None

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, **self.spec.model_dump(mode="json")}


@dataclass(frozen=True)
class NodeGroupRecord:
    cluster: str
    name: str
    uuid: str
    spec: NodeGroupSpec
    status: str = ""
    status_reason: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Node:
    """A recorded node of a cluster, or a lone machine (``cluster`` None)."""

    name: str
    driver: str
    cluster: str | None
    group: str
    role: Role
    index: int = 0
    host: str | None = None
    status: str = READY
    status_reason: str = ""
    engine: EngineOptions = field(default_factory=EngineOptions)
    record: NodeRecord | None = None
    endpoint: Endpoint | None = None
    engine_version: str = ""  # the Docker version its engine last reported; "" unknown
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def address(self) -> str:
        return self.record.address if self.record else ""

    @property
    def url(self) -> str:
        return self.endpoint.docker_url if self.endpoint else ""

    @property
    def scope(self) -> tuple[str, str]:
        """Whose options and lock this node uses: its cluster's, or its own."""
        return ("cluster", self.cluster) if self.cluster else ("machine", self.name)


@dataclass(frozen=True)
class ClusterRecord:
    """A recorded cluster or lone machine with its desired spec (secrets left out)."""

    name: str
    uuid: str
    spec: ClusterSpec
    status: str
    status_reason: str = ""
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)  # per driver
    coe_data: dict[str, Any] = field(default_factory=dict)
    health_status: str = UNKNOWN
    health_status_reason: dict[str, str] = field(default_factory=dict)
    project: str | None = None
    nodegroups: tuple[NodeGroupRecord, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def driver(self) -> str:
        return self.spec.driver

    @property
    def template(self) -> str | None:
        return self.spec.template

    @property
    def master_count(self) -> int:
        return self.spec.master_count

    @property
    def node_count(self) -> int:
        return self.spec.node_count
