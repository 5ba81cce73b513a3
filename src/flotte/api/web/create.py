"""Create a cluster from a template: the form, its plan and cost before submitting,
and the submit itself (the API's create, in-process).

The plan is the planner's own (``planner.plan`` of the spec the API would record,
built by the API's ``desired`` module) and its cost the service's pricing of that plan
(``service.pricing``), as ``flotte cluster create --dry-run`` shows them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flotte import planner
from flotte.api.context import job_queue
from flotte.api.magnum import clusters as magnum
from flotte.api.magnum.common import internal_name
from flotte.api.magnum.desired import create_spec
from flotte.api.magnum.lookup import one_template
from flotte.api.magnum.models import ClusterCreate
from flotte.api.web import forms
from flotte.api.web.render import DAYS_PER_MONTH, html
from flotte.api.web.session import PREFIX, Seen, Viewer
from flotte.errors import FlotteError
from flotte.service.pricing import group_costs, total

router = APIRouter(prefix=PREFIX, include_in_schema=False)
FIELDS = ("name", "cluster_template_id", "master_count", "node_count")
# where an API message about a create belongs in the form
PLACES = {
    "cluster_template_id": ("clustertemplate", "coe", "account for the", "driver"),
    "node_count": ("node_count", "node count"),
    "master_count": ("master_count", "master count", "manager"),
    "name": ("name",),
}
WHAT = {
    planner.Action.PREPARE: "shared resources of the {driver} driver (network, key)",
    planner.Action.CREATE: "node {node} ({role})",
    planner.Action.PROVISION: "a TLS Docker engine on {node}",
    planner.Action.INIT: "the swarm, started on {node}",
    planner.Action.JOIN: "{node} joins the swarm",
    planner.Action.READY: "wait until every node is Ready",
}


def _values(data: dict[str, str]) -> dict[str, str]:
    return {k: (data.get(k) or "").strip() for k in FIELDS}


def _body(values: dict[str, str]) -> ClusterCreate:
    return forms.checked(
        ClusterCreate,
        {
            # an empty name is refused by the API's model: the page names every cluster
            "name": values["name"],
            "cluster_template_id": values["cluster_template_id"],
            "master_count": forms.number(values["master_count"]),
            "node_count": forms.number(values["node_count"]),
        },
    )


def _name_free(seen: Viewer, name: str | None) -> None:
    """A project names each of its clusters once: a second one of the same name would
    make the name ambiguous for every later request by name."""
    if not name:
        return
    taken = seen.ctx.serving.owned.find_clusters(name, seen.who.project_id)
    if any(c.display_name == name for c in taken):
        raise forms.Invalid(
            {"name": f"a cluster named {name} already exists in this project: choose another name"},
            409,
        )


def plan_of(seen: Viewer, body: ClusterCreate) -> dict[str, Any]:
    """The plan and cost of creating ``body``, as the create would record it."""
    ctx, who = seen.ctx, seen.who
    template = one_template(ctx.serving.owned, who, body.cluster_template_id)
    internal = internal_name(body.name or "cluster")
    spec = create_spec(ctx, who, body, internal, template)
    made = planner.plan(planner.Recorded(name=internal), spec)
    rows = group_costs(spec, made)
    day = total(rows)
    for group, row in zip(spec.nodegroups, rows, strict=True):
        row["role"] = group.role
    # Nodes by group and number: their names get the cluster's unique suffix only
    # when the create is recorded.
    who_is = {s.node: f"{s.group} #{s.index + 1}" for s in made.steps if s.node and s.group}
    steps = []
    for s in made.steps:
        label = WHAT.get(s.action)
        if label:
            role = s.role.value if s.role else ""
            node = who_is.get(s.node or "", s.node or "")
            steps.append(label.format(driver=s.driver, node=node, role=role))
    actions = Counter(s.action.value for s in made.steps)
    return {
        "template": template.display_name,
        "driver": spec.driver,
        "rows": rows,
        "eur_day": day,
        "eur_month": None if day is None else round(day * DAYS_PER_MONTH, 2),
        "steps": steps,
        "nodes": sum(g.node_count for g in spec.nodegroups),
        "actions": dict(actions),
    }


def _preview(seen: Viewer, values: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    if not values["cluster_template_id"]:
        return None, {}
    # the plan does not depend on the name: preview before one is typed
    values = {**values, "name": values["name"] or "cluster"}
    try:
        return plan_of(seen, _body(values)), {}
    except forms.Invalid as err:
        return None, err.errors
    except FlotteError as err:
        return None, forms.refused(err, PLACES).errors


def _templates(seen: Viewer) -> list[Any]:
    who = seen.who
    return [
        t
        for t in seen.ctx.serving.owned.templates(who.sees)
        if not t.magnum.get("hidden") or t.record.project == who.project_id
    ]


@router.get("/clusters/new")
async def new_form(request: Request, seen: Seen) -> Response:
    values = _values(dict(request.query_params))
    templates = _templates(seen)
    if not values["cluster_template_id"] and templates:
        values["cluster_template_id"] = templates[0].display_name
    plan, errors = _preview(seen, values)
    return html(
        request,
        "new.html",
        seen,
        values=values,
        templates=templates,
        plan=plan,
        errors=errors,
    )


@router.get("/clusters/plan")
async def plan_fragment(request: Request, seen: Seen) -> Response:
    """The plan box alone, for the form's script to refresh as the user types."""
    values = _values(dict(request.query_params))
    plan, errors = _preview(seen, values)
    return html(request, "plan.html", seen, plan=plan, errors=errors)


@router.post("/clusters")
async def create(request: Request, seen: Seen) -> Response:
    data = await forms.form(request)
    seen.check_csrf(data.get("csrf"))
    values = _values(data)
    try:
        body = _body(values)
        _name_free(seen, body.name)
        done = await magnum.create(body, seen.ctx, seen.who, job_queue(request))
    except (forms.Invalid, FlotteError) as err:
        problem = err if isinstance(err, forms.Invalid) else forms.refused(err, PLACES)
        plan, _ = _preview(seen, values)
        return html(
            request,
            "new.html",
            seen,
            status=problem.status,
            values=values,
            templates=_templates(seen),
            plan=plan,
            errors=problem.errors,
        )
    return RedirectResponse(f"{PREFIX}/clusters/{done['uuid']}", status_code=303)
