"""Cluster and node group lifecycle through the API, on the fake cloud: what is recorded,
what requests are submitted, and what the Magnum views say."""

from __future__ import annotations

import asyncio

from api_harness import Api
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from flotte.state.store import Store


async def test_create_list_show_resize_update_delete(api: Api) -> None:
    api.user("alice", "lab")
    tpl = await api.template("alice", flavor_id="f.small", master_flavor_id="f.big")
    assert tpl["driver"] == "fake" and tpl["labels"] == {"no_provision": "true"}
    uuid = await api.cluster("alice", "web", node_count=2, keypair="k1")
    assert api.jobs.submitted[-1][0] == "cluster.create"
    listed = (await api.client.get("/v1/clusters", headers=api.h("alice"))).json()["clusters"]
    assert [(c["uuid"], c["name"], c["node_count"], c["status"]) for c in listed] == [
        (uuid, "web", 2, "CREATE_COMPLETE")
    ]
    shown = await api.show("alice", "web")
    assert shown["cluster_template_id"] == tpl["uuid"]
    assert (shown["flavor_id"], shown["master_flavor_id"], shown["keypair"]) == (
        "f.small",
        "f.big",
        "k1",
    )
    assert len(shown["node_addresses"]) == 2 and len(shown["master_addresses"]) == 1
    internal = shown["stack_id"]
    assert internal.startswith("web-") and len(internal) == len("web-") + 6

    r = await api.client.post(
        f"/v1/clusters/{uuid}/actions/resize", json={"node_count": 3}, headers=api.h("alice")
    )
    assert r.status_code == 202 and r.json() == {"uuid": uuid}
    await api.jobs.drain()
    assert (await api.show("alice", uuid))["node_count"] == 3
    victim = next(n for n in api.svc.store.nodes(cluster=internal) if n.group == "default-worker")
    r = await api.client.post(
        f"/v1/clusters/{uuid}/actions/resize",
        json={"node_count": 2, "nodes_to_remove": [victim.name], "nodegroup": "default-worker"},
        headers=api.h("alice"),
    )
    assert r.status_code == 202
    await api.jobs.drain()
    names = {n.name for n in api.svc.store.nodes(cluster=internal)}
    assert victim.name not in names and len(names) == 3

    ops = [
        {"op": "replace", "path": "/node_count", "value": 1},
        {"op": "replace", "path": "/name", "value": "www"},
    ]
    r = await api.client.patch(f"/v1/clusters/{uuid}", json=ops, headers=api.h("alice"))
    assert r.status_code == 202, r.text
    await api.jobs.drain()
    shown = await api.show("alice", uuid)
    assert (shown["name"], shown["node_count"], shown["status"]) == ("www", 1, "UPDATE_COMPLETE")

    r = await api.client.delete("/v1/clusters/www", headers=api.h("alice"))
    assert r.status_code == 204
    await api.jobs.drain()
    assert (await api.client.get(f"/v1/clusters/{uuid}", headers=api.h("alice"))).status_code == 404
    assert api.svc.store.clusters() == [] and api.svc.store.nodes() == []
    assert not api.svc.paths.cluster_ca(internal).exists()
    assert not api.jobs.errors


async def test_nodegroups(api: Api) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    uuid = await api.cluster("alice", "web", node_count=1)
    base = f"/v1/clusters/{uuid}/nodegroups"
    r = await api.client.post(
        base + "/",
        json={"name": "big", "node_count": 2, "flavor_id": "f.large"},
        headers=api.h("alice"),
    )
    assert r.status_code == 202, r.text
    assert r.json()["name"] == "big" and r.json()["status"] == "CREATE_IN_PROGRESS"
    await api.jobs.drain()
    groups = {
        g["name"]: g
        for g in (await api.client.get(base, headers=api.h("alice"))).json()["nodegroups"]
    }
    assert set(groups) == {"default-master", "default-worker", "big"}
    assert groups["big"]["node_count"] == 2 and len(groups["big"]["node_addresses"]) == 2
    assert groups["default-master"]["is_default"] and not groups["big"]["is_default"]
    r = await api.client.post(base, json={"name": "big"}, headers=api.h("alice"))
    assert r.status_code == 409
    r = await api.client.patch(
        f"{base}/big",
        json=[{"op": "replace", "path": "/node_count", "value": 0}],
        headers=api.h("alice"),
    )
    assert r.status_code == 202
    await api.jobs.drain()
    assert (await api.client.get(f"{base}/big", headers=api.h("alice"))).json()["node_count"] == 0
    r = await api.client.patch(
        f"{base}/big",
        json=[{"op": "replace", "path": "/min_node_count", "value": 4}],
        headers=api.h("alice"),
    )
    assert r.status_code == 400 and "outside" in r.json()["errors"][0]["title"]
    assert (await api.client.delete(f"{base}/big", headers=api.h("alice"))).status_code == 204
    await api.jobs.drain()
    assert (await api.client.get(f"{base}/big", headers=api.h("alice"))).status_code == 404
    assert not api.jobs.errors


async def test_certificates_are_signed_by_the_clusters_own_ca(api: Api) -> None:
    api.user("alice", "lab")
    await api.template("alice")
    first = await api.cluster("alice", "one", node_count=0)
    second = await api.cluster("alice", "two", node_count=0)
    ca_pem = (await api.client.get(f"/v1/certificates/{first}", headers=api.h("alice"))).json()[
        "pem"
    ]
    other_pem = (await api.client.get("/v1/certificates/two", headers=api.h("alice"))).json()["pem"]
    assert ca_pem != other_pem
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    r = await api.client.post(
        "/v1/certificates", json={"cluster_uuid": "one", "csr": csr}, headers=api.h("alice")
    )
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.json()["pem"].encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )  # type: ignore[arg-type]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    r = await api.client.post(
        "/v1/certificates", json={"cluster_uuid": second, "csr": "garbage"}, headers=api.h("alice")
    )
    assert r.status_code == 400 and "CSR" in r.json()["errors"][0]["title"]


async def test_twenty_concurrent_creates_against_a_quota_of_five(api: Api) -> None:
    api.user("alice", "lab")
    api.user("root", "ops", admin=True)
    await api.template("alice")
    project = api.identity.tenancy.project("lab").id
    r = await api.client.post(
        "/v1/quotas",
        json={"project_id": project, "resource": "Cluster", "hard_limit": 5},
        headers=api.h("root"),
    )
    assert r.status_code == 201, r.text
    results = await asyncio.gather(
        *(
            api.client.post(
                "/v1/clusters",
                json={"name": f"c{i}", "cluster_template_id": "swarm", "node_count": 0},
                headers=api.h("alice"),
            )
            for i in range(20)
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [202] * 5 + [403] * 15
    refused = next(r for r in results if r.status_code == 403)
    assert "quota exceeded" in refused.json()["errors"][0]["title"]
    await api.jobs.drain()
    assert len(api.svc.store.clusters()) == 5
    stats = (await api.client.get("/v1/stats", headers=api.h("alice"))).json()
    assert stats == {"clusters": 5, "nodes": 5}


async def test_quotas_api(api: Api) -> None:
    api.user("alice", "lab")
    api.user("root", "ops", admin=True)
    project = api.identity.tenancy.project("lab").id
    body = {"project_id": project, "resource": "Cluster", "hard_limit": 2}
    r = await api.client.post("/v1/quotas", json=body, headers=api.h("alice"))
    assert r.status_code == 403
    assert (
        await api.client.post("/v1/quotas", json=body, headers=api.h("root"))
    ).status_code == 201
    assert (
        await api.client.post("/v1/quotas", json=body, headers=api.h("root"))
    ).status_code == 409
    r = await api.client.patch(
        f"/v1/quotas/{project}/Cluster", json={"hard_limit": 7}, headers=api.h("root")
    )
    assert r.status_code == 202 and r.json()["hard_limit"] == 7
    mine = (await api.client.get("/v1/quotas", headers=api.h("alice"))).json()["quotas"]
    assert [(q["project_id"], q["hard_limit"]) for q in mine] == [(project, 7)]
    r = await api.client.get("/v1/quotas/elsewhere/Cluster", headers=api.h("alice"))
    assert r.status_code == 403
    r = await api.client.get(f"/v1/quotas/{project}/Widgets", headers=api.h("alice"))
    assert r.status_code == 400
    assert (
        await api.client.delete(f"/v1/quotas/{project}/Cluster", headers=api.h("root"))
    ).status_code == 204
    r = await api.client.get(f"/v1/quotas/{project}/Cluster", headers=api.h("alice"))
    assert r.json()["hard_limit"] == 20  # the default


async def test_the_list_follows_every_write_wherever_it_comes_from(api: Api) -> None:
    """An answer of GET /v1/clusters is kept between requests, but a change written by
    any process (a worker's status, another process's delete) shows on the next one."""
    api.user("alice", "lab")
    api.user("bob", "other")
    await api.template("alice")
    await api.template("bob")
    await api.cluster("alice", "web")
    await api.cluster("alice", "db")
    await api.cluster("bob", "web")

    async def listed(user: str) -> list[tuple[str, str]]:
        r = await api.client.get("/v1/clusters", headers=api.h(user))
        assert r.status_code == 200, r.text
        return [(c["name"], c["status"]) for c in r.json()["clusters"]]

    assert await listed("alice") == [("web", "CREATE_COMPLETE"), ("db", "CREATE_COMPLETE")]
    assert await listed("alice") == await listed("alice")
    web = (await api.show("alice", "web"))["stack_id"]
    db = (await api.show("alice", "db"))["stack_id"]
    other = Store(api.svc.store.url)  # what another serve process or a worker writes through
    try:
        other.set_cluster(web, status="UPDATE_FAILED", status_reason="planted")
        assert await listed("alice") == [("web", "UPDATE_FAILED"), ("db", "CREATE_COMPLETE")]
        other.delete_cluster(db)
        assert await listed("alice") == [("web", "UPDATE_FAILED")]
    finally:
        other.close()
    assert await listed("bob") == [("web", "CREATE_COMPLETE")]  # bob's list untouched
