"""The web page in Keystone mode, in Debian's chromium: devcloud's users log in at
/ui/login with their Keystone project (the passwords are read from devcloud's
clouds.yaml), each sees its own project's clusters and no other's, the admin sees
every project's; a wrong password shows the error and opens no session. A user with
roles in two projects switches between them from the header: Keystone re-scopes the
session's token, and refuses a project the user lost its role in. Standalone users
have one project each: no switch is shown."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_pages import PASSWORDS, log_in, user_field_focused

from fixtures.browser import keep_screenshot
from fixtures.devcloud import DevCloud, devcloud  # noqa: F401 (the fixture, by name)
from fixtures.serve import ServeProcess, serve_env

pytestmark = [pytest.mark.slow]
API = {"OpenStack-API-Version": "container-infra latest"}


@pytest.fixture(scope="module")
def dc(devcloud: DevCloud) -> DevCloud:  # noqa: F811 (the imported fixture, by name)
    """devcloud, brought up once per session (its ``devcloud`` marker puts the tests in
    the devcloud lane), under a short name."""
    return devcloud


@dataclass(frozen=True)
class Account:
    """A Keystone user and the project it logs in to (devcloud's clouds.yaml entry)."""

    user: str
    password: str = field(repr=False)  # never in a failed test's report
    project: str


def account_of(dc: DevCloud, cloud: str) -> Account:
    auth = dc.clouds()[cloud]["auth"]
    return Account(str(auth["username"]), str(auth["password"]), str(auth["project_name"]))


def keystone_token(dc: DevCloud, who: Account) -> str:
    default = {"id": "default"}
    user = {"name": who.user, "domain": default, "password": who.password}
    body = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": who.project, "domain": default}},
        }
    }
    r = httpx.post(f"{dc.auth_url}/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


@pytest.fixture(scope="module")
def ks_web(dc: DevCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """flotte serve validating devcloud's Keystone tokens, clusters on the fake cloud."""
    tmp = tmp_path_factory.mktemp("ks-web")
    env = serve_env(tmp, dc.env, FLOTTE_FAKE_DIR=str(tmp / "fake-cloud"))
    server = ServeProcess(tmp / "home", env)
    server.start(
        "--identity", "keystone", "--keystone-url", dc.auth_url, "--default-driver", "fake"
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def make_cluster(web: ServeProcess, token: str, name: str) -> dict[str, Any]:
    """A 1-node cluster through the API with a Keystone token, once CREATE_COMPLETE."""
    h = {**API, "X-Auth-Token": token}
    tpl: dict[str, Any] = {"name": f"{name}-t", "coe": "swarm-mode", "image_id": "debian"}
    tpl["labels"] = {"no_provision": "true"}  # nodes without an engine: the fake cloud
    r = httpx.post(f"{web.url}/v1/clustertemplates", json=tpl, headers=h, timeout=30)
    assert r.status_code == 201, r.text
    body = {"name": name, "cluster_template_id": f"{name}-t", "node_count": 1}
    r = httpx.post(f"{web.url}/v1/clusters", json=body, headers=h, timeout=30)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while True:
        shown = httpx.get(f"{web.url}/v1/clusters/{name}", headers=h, timeout=30).json()
        if shown["status"] == "CREATE_COMPLETE":
            return dict(shown)
        assert time.monotonic() < deadline and "FAILED" not in shown["status"], shown
        time.sleep(0.5)


@pytest.fixture(scope="module")
def clusters(ks_web: ServeProcess, dc: DevCloud) -> dict[str, dict[str, Any]]:
    """One cluster in the demo project and one in the alt project."""
    demo, alt = (account_of(dc, c) for c in (dc.demo_cloud, dc.alt_cloud))
    return {
        "demo": make_cluster(ks_web, keystone_token(dc, demo), "demo-web"),
        "alt": make_cluster(ks_web, keystone_token(dc, alt), "alt-web"),
    }


@pytest.fixture(scope="module")
def two_projects(dc: DevCloud) -> Iterator[tuple[Account, Any, Any, Any]]:
    """A user of this test with the member role in the demo and the alt projects
    (made through devcloud's admin cloud, deleted at the end with its roles)."""
    conn = dc.connect(dc.admin_cloud)
    ident = conn.identity
    demo = ident.find_project(account_of(dc, dc.demo_cloud).project, domain_id="default")
    alt = ident.find_project(account_of(dc, dc.alt_cloud).project, domain_id="default")
    password = secrets.token_urlsafe(18)
    user = ident.create_user(
        name=f"flotte-ui-{secrets.token_hex(4)}", password=password, domain_id="default"
    )
    try:
        member = ident.find_role("member")
        for project in (demo, alt):
            ident.assign_project_role_to_user(project, user, member)
        yield Account(user.name, password, demo.name), conn, user, (demo, alt, member)
    finally:
        ident.delete_user(user)
        conn.close()


@pytest.fixture
def browser_ctx(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ctx
    finally:
        ctx.close()


def keystone_login(page: Any, web: ServeProcess, who: Account) -> float:
    """With the keyboard: user, Tab, password, Tab, project, Enter; the seconds from
    Enter to the cluster list shown."""
    page.goto(f"{web.url}/ui")
    assert "/ui/login" in page.url
    assert page.inner_text("label[for=project]") == "Keystone project"
    user_field_focused(page)
    page.keyboard.type(who.user)
    page.keyboard.press("Tab")
    page.keyboard.type(who.password)
    page.keyboard.press("Tab")
    page.keyboard.type(who.project)
    started = time.monotonic()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web.url}/ui/clusters")
    took = time.monotonic() - started
    assert page.inner_text("#whoami").startswith(f"{who.user} · {who.project}")
    return took


def listed(page: Any) -> set[str]:
    if page.is_visible("#empty"):
        return set()
    return {r.inner_text() for r in page.query_selector_all("#clusters tbody tr td:first-child")}


def test_keystone_users_see_their_project(
    ks_web: ServeProcess,
    dc: DevCloud,
    clusters: dict[str, dict[str, Any]],
    browser_ctx: Any,
    chromium: Any,
) -> None:
    demo = account_of(dc, dc.demo_cloud)
    page = browser_ctx.new_page()
    took = keystone_login(page, ks_web, demo)
    assert listed(page) == {"demo-web"}
    assert page.query_selector("#switch-project") is None  # one project: nothing to switch to
    (cookie,) = browser_ctx.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert cookie["value"] not in page.content()
    page.goto(f"{ks_web.url}/ui/clusters/{clusters['demo']['uuid']}")
    assert page.inner_text("#cluster-name") == "demo-web"

    other = chromium.new_context()
    try:
        alt_page = other.new_page()
        keystone_login(alt_page, ks_web, account_of(dc, dc.alt_cloud))
        assert listed(alt_page) == {"alt-web"}
        for ident in (clusters["demo"]["uuid"], "demo-web"):
            alt_page.goto(f"{ks_web.url}/ui/clusters/{ident}")
            assert "could not be found" in alt_page.inner_text("main")
    finally:
        other.close()
    print(f"keystone login in the browser: {took * 1000:.0f} ms from Enter to the list")


def test_wrong_password_opens_no_session(
    ks_web: ServeProcess, dc: DevCloud, browser_ctx: Any
) -> None:
    demo = account_of(dc, dc.demo_cloud)
    page = browser_ctx.new_page()
    for password, project in (("not-" + demo.password, demo.project), (demo.password, "admin")):
        page.goto(f"{ks_web.url}/ui/login")
        page.fill("#user", demo.user)
        page.fill("#password", password)
        page.fill("#project", project)
        with page.expect_response(f"{ks_web.url}/ui/login") as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        assert page.inner_text("#login-error") == "the user name, password or project is wrong"
        assert page.input_value("#user") == demo.user and page.input_value("#password") == ""
        assert browser_ctx.cookies() == []
    page.goto(f"{ks_web.url}/ui/clusters")
    assert "/ui/login" in page.url


def test_admin_sees_every_project(
    ks_web: ServeProcess,
    dc: DevCloud,
    clusters: dict[str, dict[str, Any]],
    browser_ctx: Any,
) -> None:
    page = browser_ctx.new_page()
    keystone_login(page, ks_web, account_of(dc, dc.admin_cloud))
    assert "(admin)" in page.inner_text("#whoami")
    rows = page.inner_text("#clusters tbody")
    assert listed(page) >= {"demo-web", "alt-web"}
    for cluster in clusters.values():
        assert cluster["project_id"] in rows  # the project column: Keystone's project ids


def test_switch_project(
    ks_web: ServeProcess,
    dc: DevCloud,
    clusters: dict[str, dict[str, Any]],
    two_projects: tuple[Account, Any, Any, Any],
    browser_ctx: Any,
    screenshots: Path,
) -> None:
    who, conn, user, (demo, alt, member) = two_projects
    page = browser_ctx.new_page()
    keystone_login(page, ks_web, who)
    assert listed(page) == {"demo-web"}
    # the control: labelled, both projects listed, the current one chosen
    assert page.inner_text("label[for=switch-project]") == "Project"
    options = page.eval_on_selector_all(
        "#switch-project option", "os => os.map(o => [o.value, o.textContent, o.selected])"
    )
    assert sorted(options) == sorted([[demo.id, demo.name, True], [alt.id, alt.name, False]])
    keep_screenshot(page, screenshots, "keystone-switch", full=False)
    page.set_viewport_size({"width": 360, "height": 740})  # the header wraps, never wider
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.is_visible("#switch-project")
    page.set_viewport_size({"width": 1280, "height": 900})
    before = browser_ctx.cookies()[0]["value"]

    # a form without the session's CSRF token, or naming a project not listed: refused
    csrf = page.input_value("form.switch input[name=csrf]")
    forged = page.request.post(
        f"{ks_web.url}/ui/project", form={"csrf": "forged", "project": alt.id}, max_redirects=0
    )
    assert forged.status == 403
    admin = conn.identity.find_project("admin", domain_id="default")  # no role there
    stray = page.request.post(
        f"{ks_web.url}/ui/project", form={"csrf": csrf, "project": admin.id}, max_redirects=0
    )
    assert stray.status == 400 and "choose one of the projects" in stray.text()
    assert browser_ctx.cookies()[0]["value"] == before

    # with the keyboard: the list, then Tab to the button, Enter
    started = time.monotonic()
    page.select_option("#switch-project", alt.id)
    page.focus("#switch-project")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Switch"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "t => document.getElementById('whoami').textContent.endsWith(t)", arg=f"· {alt.name}"
    )
    took = time.monotonic() - started
    assert page.url == f"{ks_web.url}/ui/clusters"
    assert listed(page) == {"alt-web"}
    assert browser_ctx.cookies()[0]["value"] != before
    page.goto(f"{ks_web.url}/ui/clusters/{clusters['demo']['uuid']}")
    assert "could not be found" in page.inner_text("main")

    # a role taken away after the header was drawn: Keystone refuses, nothing changes
    conn.identity.unassign_project_role_from_user(demo, user, member)
    page.goto(f"{ks_web.url}/ui/clusters")
    page.select_option("#switch-project", demo.id)
    with page.expect_response(f"{ks_web.url}/ui/project") as answer:
        page.click("form.switch button")
    assert answer.value.status == 403
    assert "no role in it" in page.inner_text("main")
    page.goto(f"{ks_web.url}/ui/clusters")
    assert page.inner_text("#whoami").endswith(f"· {alt.name}")
    assert listed(page) == {"alt-web"}
    print(f"switching project in the browser: {took * 1000:.0f} ms from Enter to the list")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("standalone-web")
    server = ServeProcess(tmp / "home", serve_env(tmp)).start()
    try:
        server.user("alice", "lab", PASSWORDS["alice"])
        yield server
    finally:
        server.stop()


def test_standalone_shows_no_switch(standalone: ServeProcess, browser_ctx: Any) -> None:
    """A standalone user belongs to one project: no control, and the form is refused."""
    page = browser_ctx.new_page()
    log_in(page, standalone, "alice")
    assert page.query_selector("#switch-project") is None
    csrf = page.input_value("form.who input[name=csrf]")
    r = page.request.post(
        f"{standalone.url}/ui/project", form={"csrf": csrf, "project": "lab"}, max_redirects=0
    )
    assert r.status == 400 and "needs Keystone mode" in r.text()
