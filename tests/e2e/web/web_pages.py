"""What the web page's browser tests share: users, logging in, the API's view."""

from __future__ import annotations

from typing import Any

import httpx

from fixtures.serve import ServeProcess, login

PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-123", "root": "root-pass-12"}


def user_field_focused(page: Any) -> None:
    """Wait until the login form's user field has the focus (its ``autofocus``).

    Chromium applies ``autofocus`` at a rendering update, which may come after the load
    event on a busy machine: keys typed before it went to the page (CI, stop 24)."""
    page.wait_for_function("document.activeElement && document.activeElement.id === 'user'")


def log_in(page: Any, web: ServeProcess, user: str) -> None:
    """With the keyboard only: the user field has the focus, Tab moves, Enter submits."""
    page.goto(f"{web.url}/ui")
    assert "/ui/login" in page.url
    user_field_focused(page)
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS[user])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web.url}/ui/clusters")
    assert user in page.inner_text("#whoami")


def api_clusters(web: ServeProcess, user: str, project: str) -> list[dict[str, Any]]:
    token = login(web.url, user, PASSWORDS[user])
    r = httpx.get(f"{web.url}/v1/clusters", headers={"X-Auth-Token": token}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["clusters"])
