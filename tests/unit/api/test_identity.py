"""Standalone identity: Keystone v3 password tokens, expiry, foreign and revoked tokens."""

from __future__ import annotations

import json
import time

from api_harness import Api
from cryptography.fernet import Fernet

from flotte.identity.vault import Vault


def auth_body(user: str, password: str, project: str | None = "lab") -> dict[str, object]:
    body: dict[str, object] = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": password}
            },
        }
    }
    if project:
        body["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return {"auth": body}


async def test_password_token_with_a_catalog(api: Api) -> None:
    api.user("alice", "lab")
    assert (await api.client.get("/v3")).json()["version"]["id"].startswith("v3")
    r = await api.client.post("/v3/auth/tokens", json=auth_body("alice", "s3cret-pass"))
    assert r.status_code == 201, r.text
    token = r.headers["x-subject-token"]
    body = r.json()["token"]
    assert body["project"]["name"] == "lab" and {x["name"] for x in body["roles"]} == {
        "member",
        "reader",
    }
    magnum = next(s for s in body["catalog"] if s["type"] == "container-infra")
    assert all(e["url"] == "http://flotte.test/v1" for e in magnum["endpoints"])
    r = await api.client.get("/v1/clusters", headers={"X-Auth-Token": token})
    assert r.status_code == 200 and r.json()["clusters"] == []
    r = await api.client.get(
        "/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    assert r.status_code == 200 and r.json()["token"]["user"]["name"] == "alice"


async def test_wrong_password_or_project_is_401(api: Api) -> None:
    api.user("alice", "lab")
    api.identity.create_project("other")
    for body in (
        auth_body("alice", "wrong-password"),
        auth_body("nobody", "s3cret-pass"),
        auth_body("alice", "s3cret-pass", "other"),
    ):
        r = await api.client.post("/v3/auth/tokens", json=body)
        assert r.status_code == 401, r.text
        assert "X-Subject-Token" not in r.headers
    r = await api.client.post(
        "/v3/auth/tokens", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "Malformed JSON" in r.json()["errors"][0]["title"]
    r = await api.client.post("/v3/auth/tokens", content=b"[1]")
    assert r.status_code == 400 and "JSON object" in r.json()["errors"][0]["title"]


async def test_expired_foreign_and_revoked_tokens_are_refused(api: Api) -> None:
    token = api.user("alice", "lab")
    user = api.identity.tenancy.find_user("alice")
    assert user is not None
    vault = Vault.from_file(api.svc.paths.secrets / "serve.key")
    body = {"u": user.id, "p": user.project, "e": int(time.time()) - 5, "a": "x"}
    expired = vault.fernet("tokens").encrypt(json.dumps(body).encode()).decode()
    r = await api.client.get("/v1/clusters", headers={"X-Auth-Token": expired})
    assert r.status_code == 401 and "expired" in r.json()["errors"][0]["title"]
    body["e"] = int(time.time()) + 3600
    foreign = Fernet(Fernet.generate_key()).encrypt(json.dumps(body).encode()).decode()
    r = await api.client.get("/v1/clusters", headers={"X-Auth-Token": foreign})
    assert r.status_code == 401 and "not valid" in r.json()["errors"][0]["title"]
    r = await api.client.get("/v1/clusters", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401
    assert (
        await api.client.get("/v1/clusters", headers={"X-Auth-Token": token})
    ).status_code == 200
    api.identity.delete_user("alice")
    r = await api.client.get("/v1/clusters", headers={"X-Auth-Token": token})
    assert r.status_code == 401 and "no longer exists" in r.json()["errors"][0]["title"]


async def test_keystone_mode_has_no_v3_routes(api: Api) -> None:
    # standalone mode serves them; the Keystone-mode app is tested against devcloud
    assert (await api.client.get("/v3/")).status_code == 200
