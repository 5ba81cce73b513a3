"""The official client (python-openstackclient + python-magnumclient from PyPI) against
flotte serve in standalone mode, with the local driver: real Swarm clusters on this
machine's Docker engine, reached with the certificates `coe cluster config` writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from api_harness import OpenStack, docker_nodes

from fixtures.local import labelled, sweep
from fixtures.serve import ServeProcess, serve_env
from flotte.models import OWNER_KEY

ROOT = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.docker, pytest.mark.slow]
PASSWORDS = {"alice": "alice-pass-1", "root": "root-pass-12", "eve": "eve-pass-123"}


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: docker.DockerClient, node_image: str
) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("serve")
    home = tmp / "home"
    env = serve_env(tmp, DOCKER_CONFIG=str(tmp / "docker"))
    server = ServeProcess(home, env).start()
    for user, project, admin in (
        ("alice", "lab", False),
        ("root", "ops", True),
        ("eve", "other", False),
    ):
        server.user(user, project, PASSWORDS[user], admin=admin)
    try:
        yield server
    finally:
        server.stop()
        installation = server.installation()
        if installation:
            sweep(docker_engine, {OWNER_KEY: installation})


def client(serve: ServeProcess, user: str, project: str) -> OpenStack:
    return OpenStack.standalone(serve.url, user, PASSWORDS[user], project, serve.env)


def test_official_client_lifecycle(
    serve: ServeProcess, tmp_path: Path, docker_engine: docker.DockerClient
) -> None:
    alice = client(serve, "alice", "lab")
    tpl = alice.json(
        "coe",
        "cluster",
        "template",
        "create",
        "swarm",
        "--coe",
        "swarm-mode",
        "--image",
        "debian",
        "--external-network",
        "none",
    )
    assert tpl["coe"] == "swarm-mode" and tpl["name"] == "swarm"
    alice.run(
        "coe",
        "cluster",
        "create",
        "web",
        "--cluster-template",
        "swarm",
        "--master-count",
        "1",
        "--node-count",
        "1",
    )
    shown = alice.wait_status("web", "CREATE_COMPLETE")
    assert shown["health_status"] == "HEALTHY", shown["health_status_reason"]
    assert shown["cluster_id"].startswith("web-")  # its name in the installation
    assert shown["api_address"].startswith("tcp://") and shown["api_address"].endswith(":2376")
    assert len(shown["master_addresses"]) == 1 and len(shown["node_addresses"]) == 1
    assert [c["name"] for c in alice.json("coe", "cluster", "list")] == ["web"]

    certs = tmp_path / "certs"
    certs.mkdir()
    config = alice.run(
        "coe", "cluster", "config", "web", "--dir", str(certs), "--output-certs"
    ).stdout
    assert f"DOCKER_HOST={shown['api_address']}" in config
    nodes = docker_nodes(shown["api_address"], certs)
    assert len(nodes) == 2 and all(n["Status"] == "Ready" for n in nodes)
    # the cluster has a CA of its own, not the installation's
    assert (certs / "ca.pem").read_text() != (
        serve.home / "secrets" / "certs" / "ca.pem"
    ).read_text()

    alice.run("coe", "cluster", "resize", "web", "2")
    assert alice.wait_status("web", "UPDATE_COMPLETE")["node_count"] == 2
    assert sum(n["Status"] == "Ready" for n in docker_nodes(shown["api_address"], certs)) == 3

    alice.run("coe", "cluster", "update", "web", "--node-count", "1")
    assert alice.wait_status("web", "UPDATE_COMPLETE")["node_count"] == 1
    assert len(docker_nodes(shown["api_address"], certs)) == 2

    alice.run("coe", "nodegroup", "create", "web", "extra", "--node-count", "1")
    alice.wait_status("web", "UPDATE_COMPLETE")
    groups = {g["name"]: g for g in alice.json("coe", "nodegroup", "list", "web")}
    assert set(groups) == {"default-master", "default-worker", "extra"}
    assert groups["extra"]["node_count"] == 1
    assert len(docker_nodes(shown["api_address"], certs)) == 3
    alice.run("coe", "nodegroup", "delete", "web", "extra")
    alice.wait_status("web", "UPDATE_COMPLETE")
    assert {g["name"] for g in alice.json("coe", "nodegroup", "list", "web")} == {
        "default-master",
        "default-worker",
    }
    assert len(docker_nodes(shown["api_address"], certs)) == 2

    lab_id = alice.json("coe", "cluster", "show", "web")["project_id"]
    stats = {r["Property"]: r["Value"] for r in alice.table("coe", "stats", "list", lab_id)}
    assert stats == {"clusters": "1", "nodes": "2"}

    # another project sees nothing and touches nothing, by name or UUID
    eve = client(serve, "eve", "other")
    assert eve.json("coe", "cluster", "list") == []
    for ident in ("web", shown["uuid"]):
        res = eve.run("coe", "cluster", "show", ident, check=False)
        assert res.returncode != 0 and "could not be found" in res.stderr
        res = eve.run("coe", "cluster", "delete", ident, check=False)
        assert res.returncode != 0 and "could not be found" in res.stderr
    assert alice.json("coe", "cluster", "show", "web")["status"] == "UPDATE_COMPLETE"

    root = client(serve, "root", "ops")
    root.run(
        "coe",
        "quotas",
        "create",
        "--project-id",
        lab_id,
        "--resource",
        "Cluster",
        "--hard-limit",
        "3",
    )
    quotas = root.table("coe", "quotas", "list", "--all-tenants")
    assert [(q["project_id"], q["resource"], q["hard_limit"]) for q in quotas] == [
        (lab_id, "Cluster", "3")
    ]
    services = root.json("coe", "service", "list")
    assert services and services[0]["state"] == "up"
    assert [c["name"] for c in root.json("coe", "cluster", "list")] == ["web"]  # admin sees all

    alice.run("coe", "cluster", "delete", "web")
    deadline_check = alice.run("coe", "cluster", "show", "web", check=False)
    for _ in range(120):
        if deadline_check.returncode != 0:
            break
        import time

        time.sleep(1)
        deadline_check = alice.run("coe", "cluster", "show", "web", check=False)
    assert "could not be found" in deadline_check.stderr
    installation = serve.installation()
    assert labelled(docker_engine, {OWNER_KEY: str(installation)}) == []
