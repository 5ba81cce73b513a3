"""The web page in Debian's chromium against a running ``flotte serve`` with the local
driver: a real Swarm made, watched, resized, reached with the downloaded config and
deleted from the page; another project's user sees none of it; bad input is refused
next to its field with the API's message, and nothing is made."""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from api_harness import docker_nodes
from web_pages import api_clusters, log_in

from fixtures.browser import keep_screenshot
from fixtures.local import labelled
from fixtures.serve import ServeProcess
from flotte.models import OWNER_KEY

pytestmark = [pytest.mark.docker, pytest.mark.slow]
READY_WITHIN = 240_000  # ms: a 1+1 Swarm is Ready in seconds here, more on a loaded machine


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True, bypass_csp=True
    )
    try:
        yield context
    finally:
        context.close()


def node_states(page: Any) -> dict[str, str]:
    rows = page.query_selector_all("#nodes tbody tr")
    return {r.get_attribute("data-node"): r.query_selector(".state").inner_text() for r in rows}


def wait_nodes(page: Any, count: int, status: str) -> None:
    """Until ``count`` nodes are ready and the cluster is ``status``; a failed cluster
    fails the test at once, with the reason the page shows."""
    page.wait_for_function(
        """([count, status]) => {
            const now = document.getElementById('status').textContent;
            if (now.endsWith('_FAILED')) return true;
            const states = [...document.querySelectorAll('#nodes tbody .state')];
            return states.length === count && states.every(s => s.textContent === 'ready')
                && now === status;
        }""",
        arg=[count, status],
        timeout=READY_WITHIN,
    )
    now = page.inner_text("#status")
    assert not now.endswith("_FAILED"), f"{now}: {page.inner_text('#status-reason')}"


def make_template(page: Any, web: ServeProcess, name: str, driver: str, labels: str = "") -> None:
    page.goto(f"{web.url}/ui/templates")
    page.fill("#t-name", name)
    page.fill("#t-image_id", "debian")
    page.select_option("#t-driver", driver)
    page.fill("#t-labels", labels)
    page.click("#template-form button[type=submit]")
    page.wait_for_url(f"{web.url}/ui/templates")
    assert name in page.inner_text("#templates")


def test_swarm_lifecycle_in_the_browser(
    local_web: ServeProcess,
    browser_context: Any,
    chromium: Any,
    screenshots: Path,
    tmp_path: Path,
    docker_engine: docker.DockerClient,
) -> None:
    web = local_web
    page = browser_context.new_page()
    log_in(page, web, "alice")
    assert page.is_visible("#empty")
    make_template(page, web, "swarm", "local")

    page.goto(f"{web.url}/ui/clusters/new")
    page.fill("#f-name", "web1")
    page.fill("#f-master_count", "1")
    page.fill("#f-node_count", "1")
    # the plan and its cost are shown before anything is submitted
    page.wait_for_function("document.querySelectorAll('#plan-steps li').length >= 6")
    steps = page.inner_text("#plan-steps")
    assert "node default-master #1 (manager)" in steps
    assert "default-worker #1 joins the swarm" in steps
    assert "€/day" in page.inner_text("#plan-cost") or "Cost:" in page.inner_text("#plan-cost")
    assert api_clusters(web, "alice", "lab") == []
    keep_screenshot(page, screenshots, "create-form")

    page.click("#create-button")
    page.wait_for_url(f"{web.url}/ui/clusters/*")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("#nodes tbody tr")  # nodes appear as they are recorded
    keep_screenshot(page, screenshots, "cluster-creating")
    wait_nodes(page, 2, "CREATE_COMPLETE")
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"
    # each node's engine version, shown live from the swarm's listing at "ready"
    engines = [c.inner_text() for c in page.query_selector_all("#nodes tbody .engine")]
    assert len(engines) == 2 and all(re.match(r"\d+\.\d+", e) for e in engines), engines
    assert "done" in page.inner_text("#journal")
    cluster_url = page.url

    page.goto(f"{web.url}/ui/clusters")
    row = page.inner_text("#clusters tbody")
    assert "web1" in row and "CREATE_COMPLETE" in row and "master 1 · worker 1" in row
    keep_screenshot(page, screenshots, "cluster-list")

    # resize to 2 workers: the page follows the update live
    page.goto(cluster_url)  # as the server renders it, without the script's help
    assert page.query_selector_all("#nodes thead th")[4].inner_text() == "Engine"
    assert [c.inner_text() for c in page.query_selector_all("#nodes tbody .engine")] == engines
    page.fill("#resize-count", "2")
    page.click("#resize-form button")
    page.wait_for_url(cluster_url)
    wait_nodes(page, 3, "UPDATE_COMPLETE")

    # the config: CA, a client certificate for a key made now, env.sh
    with page.expect_download() as download:
        page.click("#config-download")
    archive = tmp_path / "config.zip"
    download.value.save_as(archive)
    certs = tmp_path / "certs"
    with zipfile.ZipFile(archive) as z:
        z.extractall(certs)
        assert (z.getinfo("key.pem").external_attr >> 16) & 0o777 == 0o600
    host = next(
        line.split("=", 1)[1]
        for line in (certs / "env.sh").read_text().splitlines()
        if line.startswith("export DOCKER_HOST=")
    )
    nodes = docker_nodes(host, certs)  # docker --tlsverify ... node ls
    assert [n["Status"] for n in nodes] == ["Ready"] * 3

    # another project's user sees nothing of it, by list or by address
    other = chromium.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        bob = other.new_page()
        log_in(bob, web, "bob")
        assert bob.is_visible("#empty")
        bob.goto(cluster_url)
        assert "could not be found" in bob.inner_text("main")
    finally:
        other.close()

    # delete, confirmed by the cluster's name
    page.goto(cluster_url)
    assert page.is_disabled("#delete-button")
    page.fill("#delete-confirm", "web1")
    page.click("#delete-button")
    page.wait_for_url(f"{web.url}/ui/clusters")
    deadline = time.monotonic() + 120
    while not page.is_visible("#empty"):
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(1)
        page.reload()
    owner = web.installation()
    assert owner and labelled(docker_engine, {OWNER_KEY: owner}) == []


def test_bad_input_is_refused_next_to_its_field(web: ServeProcess, browser_context: Any) -> None:
    page = browser_context.new_page()
    log_in(page, web, "bob")
    make_template(page, web, "bobs", "fake", "no_provision=true")
    page.goto(f"{web.url}/ui/clusters/new")
    bobs_template = page.eval_on_selector("#f-cluster_template_id", "s => s.value")

    page.context.clear_cookies()
    log_in(page, web, "alice")
    # the session: HttpOnly, SameSite, never written into a page; forms need its CSRF token
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert cookie["value"] not in page.content()
    forged = page.request.post(
        f"{web.url}/ui/clusters",
        form={"csrf": "forged", "name": "x0", "cluster_template_id": "quick"},
        max_redirects=0,
    )
    assert forged.status == 403
    make_template(page, web, "quick", "fake", "no_provision=true")
    page.goto(f"{web.url}/ui/clusters/new")
    page.select_option("#f-cluster_template_id", label="quick (swarm-mode, fake)")
    page.fill("#f-name", "taken")
    page.click("#create-button")
    page.wait_for_url(f"{web.url}/ui/clusters/*")
    before = {c["name"] for c in api_clusters(web, "alice", "lab")}
    assert "taken" in before

    cases = [
        ({"#f-name": ""}, "#e-name", "at least 1 character"),
        ({"#f-name": "taken"}, "#e-name", "already exists"),
        ({"#f-name": "x1", "#f-node_count": "5000"}, "#e-node_count", "less than or equal to 1000"),
        (
            {"#f-name": "x2", "#f-master_count": "0"},
            "#e-master_count",
            "greater than or equal to 1",
        ),
    ]
    for fields, where, says in cases:
        page.goto(f"{web.url}/ui/clusters/new")
        page.select_option("#f-cluster_template_id", label="quick (swarm-mode, fake)")
        for selector, value in fields.items():
            page.fill(selector, value)
        page.click("#create-button")
        page.wait_for_selector(where)
        assert says in page.inner_text(where), (fields, page.inner_text(where))
        assert page.get_attribute(where.replace("#e-", "#f-"), "aria-invalid") == "true"

    # a template of another project, as a crafted form would send it
    page.goto(f"{web.url}/ui/clusters/new")
    page.fill("#f-name", "x3")
    page.eval_on_selector(
        "#f-cluster_template_id",
        "(s, uuid) => { s.options[0].value = uuid; s.selectedIndex = 0; }",
        bobs_template,
    )
    page.click("#create-button")
    page.wait_for_selector("#e-cluster_template_id")
    assert "could not be found" in page.inner_text("#e-cluster_template_id")

    assert {c["name"] for c in api_clusters(web, "alice", "lab")} == before
    taken = next(c for c in api_clusters(web, "alice", "lab") if c["name"] == "taken")
    page.goto(f"{web.url}/ui/clusters/{taken['uuid']}")
    page.fill("#delete-confirm", "taken")
    page.click("#delete-button")
    page.wait_for_url(f"{web.url}/ui/clusters")
