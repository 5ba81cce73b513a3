"""Records as Magnum's JSON: templates, clusters (brief and full), node groups.

Field names and shapes are Magnum's (the official client prints them as they come);
``driver`` and ``stack_id`` (the cluster's name in the installation, which names its
nodes and cloud resources) are flotte's additions.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from flotte.models import Role
from flotte.specs import MASTER_GROUP, WORKER_GROUP
from flotte.state.owned import ClusterBrief, ServeCluster, ServeTemplate
from flotte.state.records import Node, NodeGroupRecord

TEMPLATE_EXTRAS = (
    "volume_driver",
    "registry_enabled",
    "hidden",
    "cluster_distro",
    "apiserver_port",
    "tags",
)
TEMPLATE_FIELDS = (
    "coe",
    "image_id",
    "flavor_id",
    "master_flavor_id",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "dns_nameserver",
    "docker_volume_size",
    "docker_storage_driver",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "network_driver",
    "insecure_registry",
    "tls_disabled",
    "public",
    "master_lb_enabled",
    "floating_ip_enabled",
    "server_type",
)


# What a list handler that returns its bytes itself (``encode``) documents.
LIST_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}


def encode(document: dict[str, Any]) -> bytes:
    """JSON as FastAPI's JSONResponse writes it, for answers kept as bytes."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def when(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def links(base: str, kind: str, uuid: str) -> list[dict[str, str]]:
    return [
        {"href": f"{base}/v1/{kind}/{uuid}", "rel": "self"},
        {"href": f"{base}/{kind}/{uuid}", "rel": "bookmark"},
    ]


def template(t: ServeTemplate, base: str) -> dict[str, Any]:
    spec = t.record.spec
    out: dict[str, Any] = {
        "uuid": t.record.uuid,
        "name": t.display_name,
        **{f: getattr(spec, f) for f in TEMPLATE_FIELDS},
        "labels": dict(t.magnum.get("labels") or spec.labels),
        "driver": spec.driver,
        "project_id": t.record.project,
        "user_id": t.magnum.get("user_id"),
        "created_at": when(t.record.created_at),
        "updated_at": when(t.updated_at),
        "links": links(base, "clustertemplates", t.record.uuid),
    }
    for key in TEMPLATE_EXTRAS:
        out[key] = t.magnum.get(key)
    out["registry_enabled"] = bool(out["registry_enabled"])
    out["hidden"] = bool(out["hidden"])
    return out


def brief(c: ClusterBrief, base: str) -> dict[str, Any]:
    return {
        "uuid": c.uuid,
        "name": c.display_name,
        "cluster_template_id": c.template_uuid,
        "keypair": c.magnum.get("keypair"),
        "node_count": c.node_count,
        "master_count": c.master_count,
        "docker_volume_size": c.magnum.get("docker_volume_size"),
        "labels": c.labels,
        "master_flavor_id": c.magnum.get("master_flavor_id"),
        "flavor_id": c.magnum.get("flavor_id"),
        "create_timeout": int(c.create_timeout),
        "status": c.status,
        "health_status": c.health_status,
        "stack_id": c.name,
        "cluster_id": c.name,  # Magnum 1.13's name for it, which the client prints
        "project_id": c.project,
        "links": links(base, "clusters", c.uuid),
    }


def _flavors(c: ServeCluster) -> tuple[str | None, str | None]:
    """(master flavor, worker flavor) the cluster's default groups use."""
    fields = c.record.spec.template_fields
    spec = c.record.spec
    worker = spec.group(WORKER_GROUP).flavor_id if spec.has_group(WORKER_GROUP) else None
    master = spec.group(MASTER_GROUP).flavor_id if spec.has_group(MASTER_GROUP) else None
    flavor = worker or c.magnum.get("flavor_id") or fields.get("flavor_id")
    return master or fields.get("master_flavor_id") or flavor, flavor


def cluster(c: ServeCluster, nodes: list[Node], base: str) -> dict[str, Any]:
    record, spec = c.record, c.record.spec
    masters = [n for n in nodes if n.role == Role.MANAGER]
    workers = [n for n in nodes if n.role != Role.MANAGER]
    api = next((m.url for m in masters if m.endpoint is not None), None)
    master_flavor, flavor = _flavors(c)
    faults = {n.name: n.status_reason for n in nodes if n.status_reason}
    return {
        "uuid": record.uuid,
        "name": c.display_name,
        "cluster_template_id": c.template_uuid,
        "keypair": c.magnum.get("keypair") or spec.template_fields.get("keypair_id"),
        "docker_volume_size": c.magnum.get("docker_volume_size")
        or spec.template_fields.get("docker_volume_size"),
        "labels": dict(spec.labels),
        "labels_overridden": {},
        "labels_added": {},
        "labels_skipped": {},
        "master_flavor_id": master_flavor,
        "flavor_id": flavor,
        "create_timeout": int(spec.create_timeout),
        "discovery_url": c.magnum.get("discovery_url"),
        "stack_id": record.name,
        "cluster_id": record.name,
        "status": record.status,
        "status_reason": record.status_reason or None,
        "health_status": record.health_status,
        "health_status_reason": record.health_status_reason,
        "api_address": api,
        "coe_version": None,
        "container_version": None,
        "master_addresses": [m.address for m in masters if m.address],
        "node_addresses": [w.address for w in workers if w.address],
        "master_count": record.master_count,
        "node_count": record.node_count,
        "project_id": record.project,
        "user_id": c.magnum.get("user_id"),
        "fixed_network": c.magnum.get("fixed_network") or spec.template_fields.get("fixed_network"),
        "fixed_subnet": c.magnum.get("fixed_subnet") or spec.template_fields.get("fixed_subnet"),
        "floating_ip_enabled": spec.template_fields.get("floating_ip_enabled", True),
        "master_lb_enabled": False,
        "faults": faults,
        "driver": spec.driver,
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
        "links": links(base, "clusters", record.uuid),
    }


def nodegroup(c: ServeCluster, g: NodeGroupRecord, nodes: list[Node], base: str) -> dict[str, Any]:
    spec = c.record.spec
    master_flavor, flavor = _flavors(c)
    default_flavor = master_flavor if g.spec.role == "master" else flavor
    image = g.spec.image_id or spec.template_fields.get("image_id")
    return {
        "uuid": g.uuid,
        "name": g.name,
        "cluster_id": c.record.uuid,
        "project_id": c.record.project,
        "docker_volume_size": g.spec.docker_volume_size or c.magnum.get("docker_volume_size"),
        "labels": dict(g.spec.labels),
        "labels_overridden": {},
        "labels_added": {},
        "labels_skipped": {},
        "flavor_id": g.spec.flavor_id or default_flavor,
        "image_id": image,
        "node_addresses": [n.address for n in nodes if n.group == g.name and n.address],
        "node_count": g.spec.node_count,
        "role": g.spec.role,
        "max_node_count": g.spec.max_node_count,
        "min_node_count": g.spec.min_node_count,
        "is_default": g.name in (MASTER_GROUP, WORKER_GROUP),
        "stack_id": c.record.name,
        "status": g.status or c.record.status,
        "status_reason": g.status_reason or None,
        "version": None,
        "merge_labels": False,
        "driver": spec.driver_of(g.spec),
        "created_at": when(g.created_at),
        "updated_at": when(g.updated_at),
        "links": links(base, f"clusters/{c.record.uuid}/nodegroups", g.uuid),
    }
