from __future__ import annotations

from api_harness import Api


async def test_create_cluster_and_list(api: Api) -> None:
    api.user("alice", "lab")
    r = await api.client.post(
        "/v1/clustertemplates",
        json={
            "name": "swarm",
            "coe": "swarm-mode",
            "image_id": "debian",
            "labels": {"no_provision": "true"},
        },
        headers=api.h("alice"),
    )
    assert r.status_code == 201, r.text
    r = await api.client.post(
        "/v1/clusters",
        json={"name": "web", "cluster_template_id": "swarm", "node_count": 2},
        headers=api.h("alice"),
    )
    assert r.status_code == 202, r.text
    await api.jobs.drain()
    assert not api.jobs.errors, api.jobs.errors
    r = await api.client.get("/v1/clusters/web", headers=api.h("alice"))
    assert r.status_code == 200, r.text
    print(r.json())
    assert r.json()["status"] == "CREATE_COMPLETE"
