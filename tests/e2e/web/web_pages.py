"""What the web page's browser tests share: users, logging in, the API's view."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from fixtures.browser import WebServe

PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-123", "root": "root-pass-12"}


def installation(home: Path) -> str | None:
    db = home / "flotte.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='installation'").fetchone()
    return str(row[0]) if row else None


def log_in(page: Any, web: WebServe, user: str) -> None:
    """With the keyboard only: the user field has the focus, Tab moves, Enter submits."""
    page.goto(f"{web.url}/ui")
    assert "/ui/login" in page.url
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS[user])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web.url}/ui/clusters")
    assert user in page.inner_text("#whoami")


def api_clusters(web: WebServe, user: str, project: str) -> list[dict[str, Any]]:
    ident = {"name": user, "domain": {"name": "Default"}, "password": PASSWORDS[user]}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": ident}}}}
    token = httpx.post(f"{web.url}/v3/auth/tokens", json=body, timeout=30).headers[
        "x-subject-token"
    ]
    r = httpx.get(f"{web.url}/v1/clusters", headers={"X-Auth-Token": token}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["clusters"])
