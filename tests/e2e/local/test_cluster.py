"""A real Swarm on the local engine: create, serve HTTP, resize, delete, nothing left."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from fixtures.local import Flotte
from flotte.models import NODE_KEY, OWNER_KEY

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.docker


def swarm_nodes(flotte: Flotte, cluster: str) -> list[dict[str, str]]:
    out = subprocess.run(
        ["docker", "--context", f"flotte-{cluster}", "node", "ls", "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        env=flotte.env,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def hello_image(docker_engine: docker.DockerClient, node_image: str) -> str:
    docker_engine.images.build(path=str(ROOT / "examples" / "hello"), tag="flotte-hello:1", rm=True)
    return "flotte-hello:1"


def engine_says(flotte: Flotte, client: docker.DockerClient, node: str) -> str:
    """The Docker version a node's engine reports to the docker CLI inside that node."""
    labels = [f"{OWNER_KEY}={flotte.installation}", f"{NODE_KEY}={node}"]
    (found,) = client.api.containers(filters={"label": labels})
    out = client.containers.get(found["Id"]).exec_run(
        ["docker", "version", "--format", "{{.Server.Version}}"]
    )
    assert out.exit_code == 0, out.output
    return str(out.output.decode().strip())


def http_get(url: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_cluster_lifecycle(
    flotte: Flotte, docker_engine: docker.DockerClient, hello_image: str
) -> None:
    out = flotte(
        "cluster", "create", "lab", "--driver", "local", "--master-count", "1", "--node-count", "2"
    )
    assert "CREATE_COMPLETE" in out.stdout
    # recorded with CREATE_COMPLETE, before any health check (flotte serve's clients
    # read this field as soon as they see the status)
    listed = json.loads(flotte("cluster", "list", "-f", "json").stdout)
    assert [(c["name"], c["health_status"]) for c in listed] == [("lab", "HEALTHY")]

    nodes = swarm_nodes(flotte, "lab")
    assert sorted(n["Hostname"] for n in nodes) == ["lab-master-0", "lab-node-0", "lab-node-1"]
    assert all(n["Status"] == "Ready" for n in nodes)
    show = json.loads(flotte("cluster", "show", "lab", "-f", "json").stdout)
    assert show["status"] == "CREATE_COMPLETE"
    assert show["health_status"] == "HEALTHY"
    assert len(show["node_addresses"]) == 2
    # each node's engine version as shown is what that engine tells its own docker CLI
    versions = {n["name"]: n["engine_version"] for n in show["nodes"]}
    assert versions == {n: engine_says(flotte, docker_engine, n) for n in versions}
    assert all(re.fullmatch(r"\d+\.\d+\S*", v) for v in versions.values()), versions

    # A service of 3 replicas, published on each node's own port (no IPVS here).
    flotte("cluster", "load-image", "lab", hello_image)
    subprocess.run(
        [
            "docker",
            "--context",
            "flotte-lab",
            "service",
            "create",
            "--detach",
            "--name",
            "hello",
            "--replicas",
            "3",
            "--endpoint-mode",
            "dnsrr",
            "--no-resolve-image",
            "--publish",
            "mode=host,target=80,published=8080",
            "--hostname",
            "{{.Node.Hostname}}",
            hello_image,
        ],
        env=flotte.env,
        check=True,
        capture_output=True,
    )
    addresses = show["master_addresses"] + show["node_addresses"]
    answers = {http_get(f"http://{ip}:8080/") for ip in addresses}
    assert answers == {"hello from lab-master-0", "hello from lab-node-0", "hello from lab-node-1"}

    flotte("cluster", "resize", "lab", "--node-count", "5")
    nodes = swarm_nodes(flotte, "lab")
    assert len(nodes) == 6 and all(n["Status"] == "Ready" for n in nodes)
    # the joined nodes' versions came with the swarm's listing when they were Ready
    grown = json.loads(flotte("cluster", "show", "lab", "-f", "json").stdout)
    assert {n["engine_version"] for n in grown["nodes"]} == set(versions.values())
    assert (
        len([c for c in flotte.owned(docker_engine, cluster="lab") if c.startswith("container")])
        == 6
    )

    flotte("cluster", "resize", "lab", "--node-count", "2")
    nodes = swarm_nodes(flotte, "lab")
    assert sorted(n["Hostname"] for n in nodes) == ["lab-master-0", "lab-node-0", "lab-node-1"]
    assert all(n["Status"] == "Ready" for n in nodes)
    show = json.loads(flotte("cluster", "show", "lab", "-f", "json").stdout)
    assert show["status"] == "UPDATE_COMPLETE" and show["node_count"] == 2

    flotte("cluster", "delete", "lab")
    assert flotte.owned(docker_engine, cluster="lab") == []
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []
    contexts = subprocess.run(
        ["docker", "context", "ls", "--format", "{{.Name}}"],
        capture_output=True,
        text=True,
        env=flotte.env,
        check=True,
    ).stdout.split()
    assert "flotte-lab" not in contexts


def test_resize_removes_the_named_nodes(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    flotte("cluster", "create", "pick", "--driver", "local", "--node-count", "3")
    flotte(
        "cluster",
        "resize",
        "pick",
        "--node-count",
        "1",
        "--nodes-to-remove",
        "pick-node-0,pick-node-2",
    )
    assert sorted(n["Hostname"] for n in swarm_nodes(flotte, "pick")) == [
        "pick-master-0",
        "pick-node-1",
    ]
    # A new worker takes the first free index again.
    flotte("cluster", "resize", "pick", "2")
    assert sorted(n["Hostname"] for n in swarm_nodes(flotte, "pick")) == [
        "pick-master-0",
        "pick-node-0",
        "pick-node-1",
    ]
    flotte("cluster", "delete", "pick")
    assert flotte.owned(docker_engine, cluster="pick") == []


def test_template_and_three_managers(flotte: Flotte, docker_engine: docker.DockerClient) -> None:
    flotte(
        "template",
        "create",
        "swarm-lab",
        "--coe",
        "swarm",
        "--driver",
        "local",
        "--labels",
        "team=physics,site=lyon",
        "--insecure-registry",
        "registry.lab:5000",
    )
    listed = json.loads(flotte("template", "list", "-f", "json").stdout)
    assert [t["name"] for t in listed] == ["swarm-lab"]
    flotte(
        "cluster",
        "create",
        "raft",
        "--template",
        "swarm-lab",
        "--master-count",
        "3",
        "--node-count",
        "0",
    )
    nodes = swarm_nodes(flotte, "raft")
    assert sum(1 for n in nodes if n["ManagerStatus"]) == 3
    info = subprocess.run(
        ["docker", "--context", "flotte-raft", "info", "--format", "{{json .}}"],
        capture_output=True,
        text=True,
        env=flotte.env,
        check=True,
    ).stdout
    data = json.loads(info)
    assert "team=physics" in data["Labels"] and "site=lyon" in data["Labels"]
    assert any("registry.lab:5000" in str(v) for v in data["RegistryConfig"]["IndexConfigs"])
    # A template in use cannot be deleted; once the cluster is gone it can.
    refused = flotte("template", "delete", "swarm-lab", check=False)
    assert refused.returncode != 0 and "used by cluster" in refused.stderr
    flotte("cluster", "delete", "raft")
    flotte("template", "delete", "swarm-lab")
    assert flotte.owned(docker_engine, cluster="raft") == []
