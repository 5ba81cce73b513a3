"""What differs on bare metal (Ironic), said rather than hidden.

- A snapshot of a bare-metal server is refused before Nova is asked: Nova accepts
  the request, then its ironic driver cannot do it and the image silently goes away.
- Nova's "No valid host" for a bare-metal flavor comes with the count of Ironic
  nodes available out of those of the flavor's resource class, when this user may
  list them (administrators; a project sees only the nodes it leases).
"""

from __future__ import annotations

from typing import Any

from flotte.drivers.openstack.connection import Provider
from flotte.drivers.openstack.lookups import Flavor, bare_metal_flavor
from flotte.errors import UsageError


def _embedded_flavor(server: Any) -> Flavor | None:
    """The flavor a server carries (compute microversion 2.47+ embeds its extra specs)."""
    found = getattr(server, "flavor", None)
    specs = getattr(found, "extra_specs", None)
    if specs is None and isinstance(found, dict):
        specs = found.get("extra_specs")
    if specs is None:
        return None
    name = getattr(found, "original_name", None) or getattr(found, "name", None) or ""
    return Flavor(id="", name=str(name), vcpus=0, ram=0, disk=0, extra_specs=dict(specs))


def refuse_snapshot(server: Any, node_name: str) -> None:
    """Raise a one-line error when ``server`` runs on bare metal."""
    flavor = _embedded_flavor(server)
    if flavor is not None and bare_metal_flavor(flavor):
        raise UsageError(
            f"{node_name} is a bare-metal server (flavor {flavor.name}): Ironic cannot snapshot "
            "it; save what it runs (e.g. docker save) or build an image for it instead"
        )


def resource_class(flavor: Flavor) -> str | None:
    """The Ironic resource class a flavor asks for (``resources:CUSTOM_BAREMETAL=1``: baremetal)."""
    for key, value in flavor.extra_specs.items():
        if key.startswith("resources:CUSTOM_") and str(value) not in ("0", ""):
            return key.removeprefix("resources:CUSTOM_").lower()
    return None


async def node_counts(p: Provider, flavor: Flavor) -> str:
    """``Ironic nodes of class baremetal: 0 available of 4`` (or why they cannot be counted).

    Ironic shows a project only the nodes it owns or leases (those its servers are
    on); a count out of those alone would mislead, so then it says so instead.
    """
    conn = p.conn
    if not conn.has_service("baremetal"):
        return "this cloud's catalog has no Bare Metal service (Ironic) to count nodes in"
    wanted = resource_class(flavor)
    fields = ["uuid", "provision_state", "maintenance", "instance_uuid", "resource_class"]
    fields += ["owner", "lessee"]
    try:
        nodes = await p.read(lambda: list(conn.baremetal.nodes(fields=fields)), "list Ironic nodes")
    except Exception:  # forbidden to this user: say so rather than guess
        return "this project may not list Ironic's nodes; ask the cloud's operators"
    if wanted is not None:
        nodes = [n for n in nodes if (n.resource_class or "").lower() == wanted]
    project = conn.current_project_id
    if nodes and all(n.lessee == project and n.owner != project for n in nodes):
        return (
            f"this project sees only the {len(nodes)} Ironic node(s) its servers use; "
            "ask the cloud's operators how many are free"
        )
    free = sum(
        1
        for n in nodes
        if n.provision_state == "available" and not n.is_maintenance and not n.instance_id
    )
    kind = f" of class {wanted}" if wanted else ""
    return f"Ironic nodes{kind}: {free} available of {len(nodes)}"
