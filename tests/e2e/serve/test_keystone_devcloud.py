"""Keystone mode against devcloud's real Keystone: flotte serve registered in the catalog
as container-infra, tokens validated by Keystone, a Swarm on Docker-backed devcloud
servers through the OpenStack driver with project devcloud-demo's sealed account, and
project devcloud-alt seeing and touching none of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_harness import OpenStack, docker_nodes, keystone_cloud, keystone_serve

from fixtures.devcloud import DevCloud, devcloud, devcloud_docker  # noqa: F401 (fixtures)
from fixtures.serve import ServeProcess

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.long]


@pytest.fixture(scope="module")
def serve(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    dc: DevCloud = request.getfixturevalue("devcloud_docker")
    tmp = tmp_path_factory.mktemp("keystone-serve")
    with keystone_serve(dc, tmp, dc.demo_cloud, DOCKER_CONFIG=str(tmp / "docker")) as server:
        yield server


def cloud(dc: DevCloud, serve: ServeProcess, name: str) -> OpenStack:
    return keystone_cloud(dc, serve, name)


def wait_gone(client: OpenStack, cluster: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = client.run("coe", "cluster", "show", cluster, check=False)
        if res.returncode != 0 and "could not be found" in res.stderr:
            return
        time.sleep(2)
    raise AssertionError(f"cluster {cluster} still there after {timeout} s")


def test_keystone_mode_on_devcloud(
    request: pytest.FixtureRequest, serve: ServeProcess, tmp_path: Path
) -> None:
    dc: DevCloud = request.getfixturevalue("devcloud_docker")
    demo, alt, admin = (cloud(dc, serve, c) for c in (dc.demo_cloud, dc.alt_cloud, dc.admin_cloud))
    servers_before = {s["Name"] for s in dc.openstack("server", "list", cloud=dc.demo_cloud)}
    assert demo.json("coe", "cluster", "list") == []
    demo.json(
        "coe", "cluster", "template", "create", "sw", "--coe", "swarm-mode",
        "--image", dc.image, "--external-network", dc.floating_pool,
        "--flavor", dc.flavor, "--fixed-network", dc.network,
    )  # fmt: skip
    started = time.monotonic()
    internal = "web-"  # the cluster's name in the installation, once it is known
    demo.run("coe", "cluster", "create", "web", "--cluster-template", "sw", "--node-count", "1")
    try:
        shown = demo.wait_status("web", "CREATE_COMPLETE", timeout=900)
        created_s = time.monotonic() - started
        internal = shown["cluster_id"]  # the client shows stack_id as cluster_id
        assert shown["api_address"].startswith("tcp://") and shown["api_address"].endswith(":2376")
        assert [c["name"] for c in demo.json("coe", "cluster", "list")] == ["web"]
        certs = tmp_path / "certs"
        certs.mkdir()
        demo.run("coe", "cluster", "config", "web", "--dir", str(certs), "--output-certs")
        nodes = docker_nodes(shown["api_address"], certs)
        assert len(nodes) == 2 and all(n["Status"] == "Ready" for n in nodes), nodes

        # project alt sees nothing of it and cannot touch it, by name or by UUID
        assert alt.json("coe", "cluster", "list") == []
        for ident in ("web", shown["uuid"]):
            for verb in ("show", "delete"):
                res = alt.run("coe", "cluster", verb, ident, check=False)
                assert res.returncode != 0 and "could not be found" in res.stderr, res.stderr
        res = alt.run("coe", "cluster", "resize", shown["uuid"], "3", check=False)
        assert res.returncode != 0 and "could not be found" in res.stderr

        demo.run("coe", "cluster", "resize", "web", "2")
        assert demo.wait_status("web", "UPDATE_COMPLETE", timeout=900)["node_count"] == 2
        assert len(docker_nodes(shown["api_address"], certs)) == 3
        demo.run("coe", "cluster", "update", "web", "--node-count", "1")
        assert demo.wait_status("web", "UPDATE_COMPLETE")["node_count"] == 1
        demo.run("coe", "nodegroup", "create", "web", "extra", "--node-count", "1")
        demo.wait_status("web", "UPDATE_COMPLETE", timeout=900)
        groups = {g["name"] for g in demo.json("coe", "nodegroup", "list", "web")}
        assert groups == {"default-master", "default-worker", "extra"}
        assert sum(n["Status"] == "Ready" for n in docker_nodes(shown["api_address"], certs)) == 3
        demo.run("coe", "nodegroup", "delete", "web", "extra")
        demo.wait_status("web", "UPDATE_COMPLETE", timeout=600)
        assert len(docker_nodes(shown["api_address"], certs)) == 2

        project = shown["project_id"]
        stats = {r["Property"]: r["Value"] for r in demo.table("coe", "stats", "list", project)}
        assert stats == {"clusters": "1", "nodes": "2"}
        admin.run(
            "coe",
            "quotas",
            "create",
            "--project-id",
            project,
            "--resource",
            "Cluster",
            "--hard-limit",
            "2",
        )
        quotas = admin.table("coe", "quotas", "list", "--all-tenants")
        assert [(q["project_id"], q["hard_limit"]) for q in quotas] == [(project, "2")]
        assert admin.json("coe", "service", "list")[0]["state"] == "up"
        assert [c["name"] for c in admin.json("coe", "cluster", "list")] == ["web"]
    finally:
        demo.run("coe", "cluster", "delete", "web", check=False)
        wait_gone(demo, "web")
    # devcloud-demo is shared with other tests: only what this cluster's name marks counts
    servers = {s["Name"] for s in dc.openstack("server", "list", cloud=dc.demo_cloud)}
    assert {n for n in servers - servers_before if n.startswith(internal)} == set()
    for kind in ("port", "floating ip", "security group", "keypair"):
        leaked = [r for r in dc.openstack(kind, "list", cloud=dc.demo_cloud) if internal in str(r)]
        assert leaked == [], (kind, leaked)
    print(f"keystone mode: a 2-node swarm on devcloud CREATE_COMPLETE in {created_s:.0f} s")
