"""Bad input gets a 4xx with a clear title, and nothing changes."""

from __future__ import annotations

from typing import Any

from api_harness import Api


def title(r: Any) -> str:
    return str(r.json()["errors"][0]["title"])


async def snapshot(api: Api) -> tuple[Any, ...]:
    clusters = [(c.name, c.status, c.spec) for c in api.svc.store.clusters()]
    templates = [(t.name, t.spec) for t in api.svc.store.templates()]
    return tuple(clusters), tuple(templates), len(api.jobs.submitted)


async def test_malformed_and_invalid_bodies(api: Api) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    before = await snapshot(api)
    json_headers = {**api.h("alice"), "Content-Type": "application/json"}
    r = await api.client.post("/v1/clusters", content=b'{"name": "x",', headers=json_headers)
    assert r.status_code == 400 and title(r).startswith("Malformed JSON")
    cases = [
        ({"name": "x", "cluster_template_id": "swarm", "node_count": -1}, "node_count"),
        ({"name": "x", "cluster_template_id": "swarm", "master_count": 0}, "master_count"),
        ({"name": "x", "cluster_template_id": "swarm", "node_count": "many"}, "node_count"),
        ({"name": "x", "cluster_template_id": "swarm", "colour": "red"}, "Unknown field 'colour'"),
        ({"name": "x"}, "Missing field 'cluster_template_id'"),
        ({"name": "x", "cluster_template_id": "swarm", "create_timeout": 0}, "create_timeout"),
    ]
    for body, expected in cases:
        r = await api.client.post("/v1/clusters", json=body, headers=api.h("alice"))
        assert r.status_code == 400, (body, r.text)
        assert expected in title(r), title(r)
    r = await api.client.post(
        "/v1/clusters", json={"name": "x", "cluster_template_id": "nope"}, headers=api.h("alice")
    )
    assert r.status_code == 404 and title(r) == "ClusterTemplate nope could not be found"
    assert await snapshot(api) == before


async def test_templates_refuse_kubernetes_unknown_drivers_and_public_for_members(api: Api) -> None:
    api.user("alice", "lab")
    base = {"name": "t", "coe": "kubernetes", "image_id": "fedora"}
    r = await api.client.post("/v1/clustertemplates", json=base, headers=api.h("alice"))
    assert r.status_code == 400 and "kubernetes is not supported" in title(r)
    assert "Docker Swarm" in title(r)
    for fields, status, words in (
        ({"coe": "mesos"}, 400, "unknown COE"),
        ({"coe": "swarm", "labels": {"driver": "vmware"}}, 400, "vmware"),
        ({"coe": "swarm", "public": True}, 403, "admin"),
        ({"coe": "swarm", "docker_volume_size": 0}, 400, "docker_volume_size"),
    ):
        r = await api.client.post(
            "/v1/clustertemplates", json={**base, **fields}, headers=api.h("alice")
        )
        assert r.status_code == status, r.text
        assert words in title(r), title(r)
    assert api.svc.store.templates() == []


async def test_read_only_paths_and_unsupported_actions(api: Api) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    before = await snapshot(api)
    for ops, words in (
        (
            [{"op": "replace", "path": "/api_address", "value": "tcp://evil:2376"}],
            "'/api_address' is an internal attribute",
        ),
        (
            [{"op": "replace", "path": "/status", "value": "CREATE_COMPLETE"}],
            "'/status' is an internal attribute",
        ),
        ([{"op": "replace", "path": "/node_count", "value": -3}], "node_count"),
        ([{"op": "replace", "path": "/node_count", "value": "3"}], "node_count"),
        ([{"op": "add", "path": "/labels/a", "value": "b"}], "labels"),
        ([{"op": "move", "path": "/node_count"}], "op"),
    ):
        r = await api.client.patch(f"/v1/clusters/{uuid}", json=ops, headers=api.h("alice"))
        assert r.status_code == 400, r.text
        assert words in title(r), title(r)
    r = await api.client.post(
        f"/v1/clusters/{uuid}/actions/upgrade",
        json={"cluster_template": "swarm"},
        headers=api.h("alice"),
    )
    assert r.status_code == 400 and "not supported" in title(r)
    r = await api.client.post(
        f"/v1/clusters/{uuid}/actions/resize",
        json={"node_count": 0, "nodes_to_remove": ["ghost"]},
        headers=api.h("alice"),
    )
    assert r.status_code == 400 and "ghost" in title(r)
    r = await api.client.delete(
        f"/v1/clusters/{uuid}/nodegroups/default-worker", headers=api.h("alice")
    )
    assert r.status_code == 400 and "cannot be deleted" in title(r)
    r = await api.client.patch(
        "/v1/clustertemplates/swarm",
        json=[{"op": "replace", "path": "/image_id", "value": "x"}],
        headers=api.h("alice"),
    )
    assert r.status_code == 400 and "referenced by cluster web" in title(r)
    r = await api.client.delete("/v1/clustertemplates/swarm", headers=api.h("alice"))
    assert r.status_code == 400 and "referenced" in title(r)
    assert await snapshot(api) == before


async def test_changes_while_a_change_runs_get_409(api: Api) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    api.svc.store.set_cluster(api.svc.store.clusters()[0].name, status="UPDATE_IN_PROGRESS")
    r = await api.client.post(
        f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 3}, headers=api.h("alice")
    )
    assert r.status_code == 409 and "UPDATE_IN_PROGRESS" in title(r)
    assert api.svc.store.clusters()[0].node_count == 1


async def test_another_projects_cluster_by_name_or_uuid_is_not_found(api: Api) -> None:
    api.user("alice", "lab")
    api.user("eve", "other")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    before = await snapshot(api)
    for ident in ("web", uuid):
        for method, path, body in (
            ("GET", f"/v1/clusters/{ident}", None),
            ("DELETE", f"/v1/clusters/{ident}", None),
            (
                "PATCH",
                f"/v1/clusters/{ident}",
                [{"op": "replace", "path": "/node_count", "value": 5}],
            ),
            ("POST", f"/v1/clusters/{ident}/actions/resize", {"node_count": 5}),
            ("GET", f"/v1/clusters/{ident}/nodegroups", None),
            ("GET", f"/v1/certificates/{ident}", None),
        ):
            r = await api.client.request(method, path, json=body, headers=api.h("eve"))
            assert r.status_code == 404, (method, path, r.text)
            assert title(r) == f"Cluster {ident} could not be found"
    r = await api.client.post(
        "/v1/clusters", json={"name": "mine", "cluster_template_id": "swarm"}, headers=api.h("eve")
    )
    assert r.status_code == 404  # alice's template is not public
    assert (await api.client.get("/v1/clusters", headers=api.h("eve"))).json()["clusters"] == []
    assert await snapshot(api) == before


async def test_an_ambiguous_name_is_409_and_its_uuid_works(api: Api) -> None:
    api.user("alice", "lab")
    api.user("bob", "lab2")
    api.user("root", "ops", admin=True)
    await api.template("root", "shared", public=True)
    first = await api.cluster("alice", "web", "shared", node_count=0)
    second = await api.cluster("bob", "web", "shared", node_count=0)
    r = await api.client.get("/v1/clusters/web", headers=api.h("root"))
    assert r.status_code == 409 and "use the UUID" in title(r)
    assert (await api.show("root", first))["project_id"] != (await api.show("root", second))[
        "project_id"
    ]
    assert (await api.show("alice", "web"))["uuid"] == first
