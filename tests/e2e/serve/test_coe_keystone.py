"""Keystone mode in CI: flotte serve validating devcloud's real Keystone tokens, found in
devcloud's catalog as container-infra, driven by the official ``openstack coe`` client
as project devcloud-demo, with the OpenStack driver on devcloud's fake compute (nodes
are Nova servers without a Docker engine: ``no_provision=true``), so it fits the CI's
devcloud lane. Project devcloud-alt sees and touches none of it; the admin sees it,
sets a quota and lists the services; an invalid token is a clean 401; the cluster's
servers are checked in Nova by the admin (openstacksdk in this process, not the flotte
serving the API), and nothing it made is left.

test_keystone_devcloud.py does the same with Docker-backed servers and a real Swarm
(long: ten minutes or more). This file's name does not start with ``test_keystone``:
tests/conftest.py runs those alone (they switch devcloud to Docker-backed servers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_harness import OpenStack, keystone_cloud, keystone_serve

from fixtures.devcloud import DevCloud, devcloud  # noqa: F401 (the fixture, by name)
from fixtures.serve import ServeProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def dc(devcloud: DevCloud) -> DevCloud:  # noqa: F811 (the imported fixture, by name)
    """devcloud, brought up once per session (its ``devcloud`` marker puts the tests in
    the devcloud lane), under a short name."""
    return devcloud


def project_of(dc: DevCloud, cloud: str) -> str:
    """The Keystone project a clouds.yaml entry works in (a second xdist worker has
    projects of its own under the same cloud names: fixtures/devcloud_tenant.py)."""
    return str(dc.clouds()[cloud]["auth"]["project_name"])


@pytest.fixture(scope="module")
def serve(dc: DevCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("keystone-ci")
    with keystone_serve(dc, tmp, project_of(dc, dc.demo_cloud)) as server:
        yield server


def cloud(dc: DevCloud, serve: ServeProcess, name: str) -> OpenStack:
    return keystone_cloud(dc, serve, name)


def nova_servers(conn: Any, prefix: str) -> list[Any]:
    """The cluster's servers as Nova lists them to the admin (every project)."""
    return [s for s in conn.compute.servers(all_projects=True) if s.name.startswith(prefix)]


def nova_count(conn: Any, prefix: str) -> int:
    """How many servers Nova has whose name starts with ``prefix`` (any project): the
    admin's openstacksdk, cheaper than a CLI process at each step."""
    return sum(1 for s in conn.compute.servers(all_projects=True) if s.name.startswith(prefix))


def leaked(dc: DevCloud, mark: str) -> dict[str, list[str]]:
    """What the demo project still holds that ``mark`` names: ports, floating IPs,
    security groups, server groups, key pairs (openstacksdk as the demo user)."""
    conn = dc.connect(dc.demo_cloud)
    try:
        kinds = {
            "ports": conn.network.ports(),
            "floating ips": conn.network.ips(),
            "security groups": conn.network.security_groups(),
            "server groups": conn.compute.server_groups(),
            "keypairs": conn.compute.keypairs(),
        }
        found = {k: [str(getattr(r, "name", None) or r.id) for r in rows if mark in str(r.to_dict())]
                 for k, rows in kinds.items()}  # fmt: skip
    finally:
        conn.close()
    return {k: v for k, v in found.items() if v}


def keystone_token(dc: DevCloud, cloud: str) -> str:
    """A token of ``cloud``'s user for its project, from Keystone (password method)."""
    auth = dc.clouds()[cloud]["auth"]
    default = {"id": "default"}
    user = {"name": auth["username"], "domain": default, "password": auth["password"]}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": auth["project_name"], "domain": default}},
        }
    }
    issued = httpx.post(f"{dc.auth_url}/auth/tokens", json=body, timeout=30)
    assert issued.status_code == 201, issued.text
    return issued.headers["X-Subject-Token"]


def wait_status(serve: ServeProcess, token: str, cluster: str, wanted: str | None) -> Any:
    """Poll the API (a CLI process per poll costs seconds on a loaded machine) until
    ``cluster`` is ``wanted`` (None: gone); a failed cluster fails at once."""
    deadline = time.monotonic() + 300
    h = {"X-Auth-Token": token, "OpenStack-API-Version": "container-infra latest"}
    last: Any = None
    while time.monotonic() < deadline:
        r = httpx.get(f"{serve.url}/v1/clusters/{cluster}", headers=h, timeout=30)
        if wanted is None and r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        last = r.json()
        if last["status"] == wanted:
            return last
        assert not last["status"].endswith("FAILED"), last
        time.sleep(0.5)
    raise AssertionError(f"cluster {cluster} not {wanted or 'gone'} after 300 s: {last}")


def refused_tokens(dc: DevCloud, serve: ServeProcess) -> None:
    """Garbage, an oversized token, and a real Keystone token revoked before flotte saw
    it: 401 with Magnum's error body, never a 500."""
    revoked = keystone_token(dc, dc.demo_cloud)
    gone = httpx.delete(
        f"{dc.auth_url}/auth/tokens",
        headers={"X-Auth-Token": revoked, "X-Subject-Token": revoked},
        timeout=30,
    )
    assert gone.status_code == 204, gone.text
    for token in ("not-a-token", "gAAAAA" + "x" * 180, revoked, "y" * 9000):
        r = httpx.get(f"{serve.url}/v1/clusters", headers={"X-Auth-Token": token}, timeout=30)
        assert r.status_code == 401, (token[:12], r.status_code, r.text)
        error = r.json()["errors"][0]
        assert error["status"] == 401 and "token" in error["title"].lower(), error


def refused_to_alt(alt: OpenStack, shown: dict[str, Any]) -> None:
    """Project alt sees nothing of demo's cluster and cannot touch it, by name or UUID."""
    assert alt.json("coe", "cluster", "list") == []
    for verb, ident in (
        ("show", "web"),
        ("show", shown["uuid"]),
        ("delete", "web"),
        ("delete", shown["uuid"]),
        ("resize", shown["uuid"]),
    ):
        extra = ("3",) if verb == "resize" else ()
        res = alt.run("coe", "cluster", verb, ident, *extra, check=False)
        assert res.returncode != 0 and "could not be found" in res.stderr, (verb, res.stderr)


def test_keystone_mode_in_ci(dc: DevCloud, serve: ServeProcess) -> None:
    demo, alt, admin = (cloud(dc, serve, c) for c in (dc.demo_cloud, dc.alt_cloud, dc.admin_cloud))
    token = keystone_token(dc, dc.demo_cloud)
    nova = dc.connect(dc.admin_cloud)
    assert demo.json("coe", "cluster", "list") == []
    tpl = demo.json(
        "coe", "cluster", "template", "create", "ks", "--coe", "swarm-mode",
        "--image", dc.image, "--external-network", dc.floating_pool,
        "--flavor", dc.flavor, "--fixed-network", dc.network, "--labels", "no_provision=true",
    )  # fmt: skip
    assert "no_provision" in str(tpl["labels"])
    started = time.monotonic()
    internal = "web-"  # the cluster's name in the installation, once it is known
    demo.run("coe", "cluster", "create", "web", "--cluster-template", "ks", "--node-count", "1")
    try:
        wait_status(serve, token, "web", "CREATE_COMPLETE")
        created_s = time.monotonic() - started
        shown = demo.json("coe", "cluster", "show", "web")
        assert shown["status"] == "CREATE_COMPLETE"
        internal = shown["cluster_id"]  # the client shows stack_id as cluster_id
        assert internal.startswith("web-") and len(internal) == len("web-") + 6
        assert (shown["master_count"], shown["node_count"]) == (1, 1)
        project = shown["project_id"]  # Keystone's id of the token's project
        assert project == nova.identity.find_project(project_of(dc, dc.demo_cloud)).id
        # no Docker engine without provisioning, so no engine address to give
        assert shown["api_address"] is None
        assert [c["name"] for c in demo.json("coe", "cluster", "list")] == ["web"]

        # Nova, asked by the admin, holds the two servers
        servers = nova_servers(nova, internal)
        names = sorted(s.name for s in servers)
        assert names == [f"{internal}-master-0", f"{internal}-node-0"], servers
        assert {s.status for s in servers} == {"ACTIVE"}
        assert {s.project_id for s in servers} == {project}
        networks = " ".join(str(s.addresses) for s in servers)
        for address in shown["master_addresses"] + shown["node_addresses"]:
            assert address in networks, (address, networks)

        refused_to_alt(alt, shown)

        demo.run("coe", "cluster", "resize", "web", "2")
        assert wait_status(serve, token, "web", "UPDATE_COMPLETE")["node_count"] == 2
        assert nova_count(nova, internal) == 3
        demo.run("coe", "cluster", "update", "web", "--node-count", "1")
        assert wait_status(serve, token, "web", "UPDATE_COMPLETE")["node_count"] == 1
        assert nova_count(nova, internal) == 2
        demo.run("coe", "nodegroup", "create", "web", "extra", "--node-count", "1")
        wait_status(serve, token, "web", "UPDATE_COMPLETE")
        groups = {g["name"]: g for g in demo.json("coe", "nodegroup", "list", "web")}
        assert set(groups) == {"default-master", "default-worker", "extra"}
        assert groups["extra"]["node_count"] == 1
        assert nova_count(nova, internal) == 3
        demo.run("coe", "nodegroup", "delete", "web", "extra")
        wait_status(serve, token, "web", "UPDATE_COMPLETE")
        groups = {g["name"]: g for g in demo.json("coe", "nodegroup", "list", "web")}
        assert set(groups) == {"default-master", "default-worker"}
        assert nova_count(nova, internal) == 2

        stats = {r["Property"]: r["Value"] for r in demo.table("coe", "stats", "list", project)}
        assert stats == {"clusters": "1", "nodes": "2"}
        # the client prints the API's refusal and exits 0: what it printed is the check
        res = demo.run(
            "coe", "quotas", "create", "--project-id", project, "--resource", "Cluster",
            "--hard-limit", "9",
        )  # fmt: skip
        assert "needs the admin role (HTTP 403)" in res.stdout + res.stderr
        admin.run(
            "coe", "quotas", "create", "--project-id", project, "--resource", "Cluster",
            "--hard-limit", "2",
        )  # fmt: skip
        quotas = admin.table("coe", "quotas", "list", "--all-tenants")
        assert [(q["project_id"], q["hard_limit"]) for q in quotas] == [(project, "2")]
        assert [s["state"] for s in admin.json("coe", "service", "list")] == ["up"]
        assert [c["name"] for c in admin.json("coe", "cluster", "list")] == ["web"]
        refused_tokens(dc, serve)
    finally:
        demo.run("coe", "cluster", "delete", "web", check=False)
        wait_status(serve, token, "web", None)
    try:
        # devcloud-demo is shared with other tests: only what this cluster's name marks
        assert nova_count(nova, internal) == 0
        assert leaked(dc, internal) == {}
    finally:
        nova.close()
    print(f"keystone mode in CI: a 1+1 cluster on devcloud CREATE_COMPLETE in {created_s:.1f} s")


def test_unregistered_project_has_no_account(dc: DevCloud, serve: ServeProcess) -> None:
    """Project alt has no OpenStack account: its create is refused (403, saying why),
    and nothing is recorded or made."""
    alt = cloud(dc, serve, dc.alt_cloud)
    alt.json(
        "coe", "cluster", "template", "create", "alt-ks", "--coe", "swarm-mode",
        "--image", dc.image, "--external-network", dc.floating_pool,
        "--flavor", dc.flavor, "--labels", "no_provision=true",
    )  # fmt: skip
    res = alt.run("coe", "cluster", "create", "nope", "--cluster-template", "alt-ks", check=False)
    assert res.returncode != 0 and "account" in res.stderr, res.stderr
    assert alt.json("coe", "cluster", "list") == []
    nova = dc.connect(dc.admin_cloud)
    try:
        assert nova_count(nova, "nope-") == 0
    finally:
        nova.close()
