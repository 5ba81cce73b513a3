"""``{id}`` in a path is a UUID or a name: one match, 404, or 409 when a name is shared.

A caller sees its own project's objects (an admin: every project's); another project's
cluster is "not found", by name or by UUID alike, so nothing tells it exists.
"""

from __future__ import annotations

from flotte.api.errors import ApiError
from flotte.identity.principal import Forbidden, Principal
from flotte.state.owned import OwnedStore, ServeCluster, ServeTemplate


def one_cluster(owned: OwnedStore, who: Principal, ident: str) -> ServeCluster:
    found = owned.find_clusters(ident, who.sees)
    if not found:
        raise ApiError(404, f"Cluster {ident} could not be found")
    if len(found) > 1:
        raise ApiError(409, f"Multiple clusters exist with the name {ident}: use the UUID instead")
    return found[0]


def one_template(owned: OwnedStore, who: Principal, ident: str) -> ServeTemplate:
    found = owned.templates(who.sees, ident)
    if not found:
        raise ApiError(404, f"ClusterTemplate {ident} could not be found")
    if len(found) > 1:
        raise ApiError(
            409, f"Multiple cluster templates exist with the name {ident}: use the UUID instead"
        )
    return found[0]


def own_template(who: Principal, template: ServeTemplate) -> None:
    """Changing a template is for its project (or an admin), not for whoever sees it."""
    if not who.is_admin and template.record.project != who.project_id:
        raise Forbidden(
            f"ClusterTemplate {template.display_name} belongs to another project: "
            "only its project or an admin may change it"
        )
