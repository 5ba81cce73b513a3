"""What the API's unit and end-to-end tests share: the real embedded job queue of
``flotte.jobs`` with a record of what was submitted, the official ``openstack`` client,
and helpers to authenticate as standalone users (``flotte serve`` in a subprocess is
``fixtures.serve``)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from fixtures.cli_zygote import run_openstack
from flotte.identity.standalone import Standalone
from flotte.jobs import EmbeddedJobs
from flotte.jobs.base import NewJob
from flotte.service import Service


class RecordedJobs(EmbeddedJobs):
    """``flotte.jobs``' embedded backend (the queue and worker ``flotte serve`` runs on
    SQLite), remembering what was submitted so a test can wait for all of it."""

    def __init__(self, svc: Service) -> None:
        super().__init__(svc, poll=0.05, retry_after=0.2)
        self.submitted: list[tuple[str, dict[str, Any]]] = []
        self.ids: list[str] = []
        self.errors: list[str] = []  # the failed jobs' errors, once drained
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}

    def enqueue(self, s: Session, job: NewJob) -> str:
        job_id = super().enqueue(s, job)
        self._pending[job_id] = (job.kind, job.payload)  # counted once its transaction commits
        return job_id

    def queued(self, job_id: str) -> None:
        super().queued(job_id)
        self.submitted.append(self._pending.pop(job_id))
        self.ids.append(job_id)

    async def drain(self, timeout: float = 300) -> None:
        """Wait until every job submitted so far has finished."""
        while self.ids:
            state = await self.wait(self.ids.pop(0), timeout)
            if state.status == "failed":
                self.errors.append(state.error)


@dataclass
class Api:
    client: httpx.AsyncClient
    jobs: RecordedJobs
    svc: Service
    identity: Standalone
    ctx: Any  # the app's ApiContext: its services, as the handlers see them
    tokens: dict[str, str] = field(default_factory=dict)

    def user(self, name: str, project: str, *, admin: bool = False) -> str:
        """Create ``project`` (if new) and user ``name`` in it; return a token."""
        if self.identity.tenancy.find_project(project) is None:
            self.identity.create_project(project)
        self.identity.create_user(name, project, "s3cret-pass", admin=admin)
        token, _ = self.identity.authenticate(name, "s3cret-pass")
        self.tokens[name] = token
        return token

    async def template(self, user: str, name: str = "swarm", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "coe": "swarm-mode", "image_id": "debian", **fields}
        body.setdefault("labels", {"no_provision": "true"})
        r = await self.client.post("/v1/clustertemplates", json=body, headers=self.h(user))
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def cluster(self, user: str, name: str, template: str = "swarm", **fields: Any) -> str:
        body = {"name": name, "cluster_template_id": template, **fields}
        r = await self.client.post("/v1/clusters", json=body, headers=self.h(user))
        assert r.status_code == 202, r.text
        await self.jobs.drain()
        return str(r.json()["uuid"])

    async def show(self, user: str, ident: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/clusters/{ident}", headers=self.h(user))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def h(self, user: str) -> dict[str, str]:
        return {
            "X-Auth-Token": self.tokens[user],
            "OpenStack-API-Version": "container-infra latest",
        }


def client_env(base: dict[str, str]) -> dict[str, str]:
    """The environment of the official client: no OS_* of the caller leaks in."""
    env = {k: v for k, v in base.items() if not k.startswith("OS_")}
    env.setdefault("SHELL", "/bin/bash")  # `coe cluster config` needs it
    return env


@dataclass
class OpenStack:
    """``openstack ... -f json`` as one user, against an auth URL or a clouds.yaml cloud."""

    auth: list[str]
    env: dict[str, str]

    @classmethod
    def standalone(
        cls, url: str, user: str, password: str, project: str, env: dict[str, str]
    ) -> OpenStack:
        return cls(
            [
                "--os-auth-url",
                f"{url}/v3",
                "--os-identity-api-version",
                "3",
                "--os-username",
                user,
                "--os-password",
                password,
                "--os-project-name",
                project,
                "--os-user-domain-name",
                "Default",
                "--os-project-domain-name",
                "Default",
            ],
            client_env(env),
        )

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        res = run_openstack([*self.auth, *args], self.env, timeout)
        if check and res.returncode != 0:
            raise AssertionError(
                f"openstack {' '.join(args)} exited {res.returncode}: {res.stderr.strip()[-2000:]}"
            )
        return res

    def json(self, *args: str) -> Any:
        out = self.run(*args, "-f", "json").stdout
        # some commands print a sentence before the document ("Request to create ...")
        start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=0)
        return json.loads(out[start:])

    def table(self, *args: str) -> list[dict[str, str]]:
        """Rows of a command that prints a table (``coe stats list``, ``coe quotas list``)."""
        lines = [line for line in self.run(*args).stdout.splitlines() if line.startswith("|")]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
        if not rows:
            return []
        return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]

    def wait_status(self, cluster: str, wanted: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.json("coe", "cluster", "show", cluster)
            if last["status"] == wanted:
                return last
            if last["status"].endswith("FAILED"):
                raise AssertionError(
                    f"cluster {cluster} is {last['status']}: {last.get('status_reason')}"
                )
            time.sleep(1)
        raise AssertionError(f"cluster {cluster} not {wanted} after {timeout} s: {last}")


def docker_nodes(api_address: str, certs: Path) -> list[dict[str, str]]:
    """``docker --tlsverify ... node ls`` with the files ``coe cluster config`` wrote."""
    tls = [
        f"--tls{k}={certs / f}"
        for k, f in (("cacert", "ca.pem"), ("cert", "cert.pem"), ("key", "key.pem"))
    ]
    out = subprocess.run(
        ["docker", "--tlsverify", *tls, "-H", api_address, "node", "ls", "--format", "{{json .}}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, f"docker node ls: {out.stderr.strip()}"
    return [json.loads(line) for line in out.stdout.splitlines()]


@contextmanager
def keystone_serve(dc: Any, tmp: Path, project: str, **env: str) -> Iterator[Any]:
    """flotte serve in Keystone mode against devcloud ``dc``, registered in its catalog as
    container-infra (unregistered after), with ``project``'s sealed OpenStack account for
    devcloud's demo cloud. devcloud's catalog has one container-infra entry: one
    registered serve at a time on this machine."""
    from fixtures.machine_lock import machine_wide
    from fixtures.serve import ServeProcess, serve_env
    from flotte.devcloud.serve_catalog import unregister_serve

    server = ServeProcess(tmp / "home", serve_env(tmp, dc.env, **env))
    with machine_wide("devcloud-serve-catalog"):
        server.start(
            "--identity", "keystone", "--keystone-url", dc.auth_url,
            "--default-driver", "openstack",
        )  # fmt: skip
        try:
            server.flotte("devcloud", "register-serve", f"{server.url}/v1", "--dir", str(dc.root))
            server.flotte(
                "account", "add", "--project", project,
                "--driver", "openstack", "--openstack-cloud", dc.demo_cloud,
                "--clouds-yaml", str(dc.clouds_yaml),
                "--openstack-ssh-user", dc.ssh_user,
            )  # fmt: skip
            yield server
        finally:
            server.stop()
            unregister_serve(dc.root)


def keystone_cloud(dc: Any, serve: Any, name: str) -> OpenStack:
    """The official client as devcloud's cloud ``name``, against ``serve``."""
    env = {**client_env(serve.env), "OS_CLIENT_CONFIG_FILE": str(dc.clouds_yaml)}
    return OpenStack(["--os-cloud", name], env)
