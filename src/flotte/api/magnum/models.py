"""Request bodies of Magnum API v1, as the official client sends them.

Unknown fields are refused (400 naming the field), as Magnum does; strings are bounded
and counts have sane ranges, so no input reaches the store unchecked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")
]
Text = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
Labels = dict[
    Annotated[
        str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f=,]*$")
    ],
    Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00-\x1f\x7f]*$")],
]
MAX_NODES = 1000  # per request: a typo must not ask a cloud for a million servers
VolumeSize = Annotated[int, Field(ge=1, le=100_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateCreate(Body):
    name: Name | None = None
    coe: Text
    image_id: Text
    driver: Text | None = None  # flotte's driver; the label `driver` says the same
    flavor_id: Text | None = None
    master_flavor_id: Text | None = None
    keypair_id: Text | None = None
    external_network_id: Text | None = None
    fixed_network: Text | None = None
    fixed_subnet: Text | None = None
    dns_nameserver: Text | None = None
    docker_volume_size: VolumeSize | None = None
    docker_storage_driver: Text | None = None
    labels: Labels | None = None
    http_proxy: Text | None = None
    https_proxy: Text | None = None
    no_proxy: Text | None = None
    network_driver: Text | None = None
    volume_driver: Text | None = None
    insecure_registry: Text | None = None
    registry_enabled: bool | None = None
    tls_disabled: bool | None = None
    public: bool | None = None
    hidden: bool | None = None
    master_lb_enabled: bool | None = None
    floating_ip_enabled: bool | None = None
    server_type: Literal["vm", "bm"] | None = None
    cluster_distro: Text | None = None
    apiserver_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    tags: Text | None = None


class ClusterCreate(Body):
    name: Name | None = None
    cluster_template_id: Name
    node_count: Annotated[int, Field(ge=0, le=MAX_NODES)] | None = None
    master_count: Annotated[int, Field(ge=1, le=99)] | None = None
    create_timeout: Annotated[int, Field(ge=1, le=10_080)] | None = None  # minutes
    discovery_url: Text | None = None
    keypair: Text | None = None
    docker_volume_size: VolumeSize | None = None
    labels: Labels | None = None
    master_flavor_id: Text | None = None
    flavor_id: Text | None = None
    fixed_network: Text | None = None
    fixed_subnet: Text | None = None
    floating_ip_enabled: bool | None = None
    master_lb_enabled: bool | None = None
    merge_labels: bool | None = None


class NodeGroupCreate(Body):
    name: Name
    node_count: Annotated[int, Field(ge=0, le=MAX_NODES)] = 1
    min_node_count: Annotated[int, Field(ge=0, le=MAX_NODES)] | None = None
    max_node_count: Annotated[int, Field(ge=1, le=MAX_NODES)] | None = None
    role: Literal["worker", "master"] = "worker"
    flavor_id: Text | None = None
    image_id: Text | None = None
    docker_volume_size: VolumeSize | None = None
    labels: Labels | None = None
    merge_labels: bool | None = None


class PatchOp(Body):
    op: Literal["add", "replace", "remove"]
    path: Annotated[str, StringConstraints(min_length=2, max_length=255, pattern=r"^/")]
    value: Any = None


class Resize(Body):
    node_count: Annotated[int, Field(ge=0, le=MAX_NODES)]
    nodes_to_remove: Annotated[list[Text], Field(max_length=MAX_NODES)] = []
    nodegroup: Name | None = None


class Upgrade(Body):
    cluster_template: Name
    max_batch_size: Annotated[int, Field(ge=1, le=MAX_NODES)] | None = None
    nodegroup: Name | None = None


class CertificateSign(Body):
    cluster_uuid: Name
    csr: Annotated[str, StringConstraints(min_length=1, max_length=16_384)]


class QuotaCreate(Body):
    project_id: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    ]
    resource: Literal["Cluster"]
    hard_limit: Annotated[int, Field(ge=0, le=1_000_000)]


class QuotaUpdate(Body):
    project_id: Text | None = None
    resource: Literal["Cluster"] | None = None
    hard_limit: Annotated[int, Field(ge=0, le=1_000_000)]
