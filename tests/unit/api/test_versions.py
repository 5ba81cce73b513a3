"""Versions, headers, errors and discovery: what every response of the API carries."""

from __future__ import annotations

from api_harness import Api


async def test_root_lists_v1_with_the_range(api: Api) -> None:
    r = await api.client.get("/")
    assert r.status_code == 200
    v1 = r.json()["versions"][0]
    assert (v1["id"], v1["min_version"], v1["max_version"]) == ("v1", "1.1", "1.10")
    assert r.headers["openstack-api-minimum-version"] == "container-infra 1.1"
    assert r.headers["openstack-api-maximum-version"] == "container-infra 1.10"
    assert r.headers["openstack-api-version"] == "container-infra 1.1"
    assert r.headers["x-openstack-request-id"].startswith("req-")


async def test_latest_and_explicit_versions_are_honoured(api: Api) -> None:
    r = await api.client.get("/v1", headers={"OpenStack-API-Version": "container-infra latest"})
    assert r.headers["openstack-api-version"] == "container-infra 1.10"
    r = await api.client.get("/v1", headers={"OpenStack-API-Version": "container-infra 1.7"})
    assert r.headers["openstack-api-version"] == "container-infra 1.7"
    assert "clusters" in r.json()


async def test_versions_outside_the_range_get_406(api: Api) -> None:
    for asked in ("1.99", "2.1", "1.0"):
        r = await api.client.get(
            "/v1", headers={"OpenStack-API-Version": f"container-infra {asked}"}
        )
        assert r.status_code == 406, asked
        error = r.json()["errors"][0]
        assert error["status"] == 406 and "[1.1, 1.10]" in error["title"]
        assert r.headers["openstack-api-maximum-version"] == "container-infra 1.10"
    r = await api.client.get("/v1", headers={"OpenStack-API-Version": "container-infra one"})
    assert r.status_code == 400


async def test_feature_older_than_its_microversion_is_refused(api: Api) -> None:
    api.user("alice", "lab")
    headers = {**api.h("alice"), "OpenStack-API-Version": "container-infra 1.8"}
    r = await api.client.get("/v1/clusters/x/nodegroups", headers=headers)
    assert r.status_code == 406 and "1.9" in r.json()["errors"][0]["title"]


async def test_errors_use_magnums_body_and_keep_the_headers(api: Api) -> None:
    r = await api.client.get("/v1/nowhere")
    assert r.status_code == 404
    error = r.json()["errors"][0]
    assert set(error) == {"request_id", "code", "status", "title", "detail", "links"}
    assert error["request_id"] == r.headers["x-openstack-request-id"]
    assert r.headers["openstack-api-version"]
    r = await api.client.get("/v1/clusters")
    assert r.status_code == 401
    assert r.json()["errors"][0]["title"].startswith("Authentication required")
    r = await api.client.delete("/v1/stats")
    assert r.status_code == 405


async def test_health_and_openapi(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok", "database": "ok"}
    doc = (await api.client.get("/openapi.json")).json()
    assert "/v1/clusters/{ident}/actions/resize" in doc["paths"]
    assert "/v3/auth/tokens" in doc["paths"]
