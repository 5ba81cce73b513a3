"""Test stand-ins for what serve-jobs builds (the job queue), shared by the API's unit
and end-to-end tests: an in-process queue that runs ``service.requests.run`` as tasks of
the running event loop.

Only tests use this; the real queue is ``flotte.jobs`` behind ``flotte serve``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx

from flotte.identity.standalone import Standalone
from flotte.service import Service
from flotte.service.requests import run


@dataclass
class InlineJobs:
    """Runs each request as a task of this event loop; ``drain`` waits for all of them."""

    svc: Service
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    submitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    async def submit(
        self, kind: str, payload: dict[str, Any], *, project: str | None, cluster: str | None
    ) -> str:
        self.submitted.append((kind, payload))
        self.tasks.append(asyncio.create_task(self._run(kind, payload)))
        return str(len(self.tasks))

    async def _run(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            await run(self.svc, kind, payload)
        except Exception as err:  # recorded in the cluster's status; kept for asserts
            self.errors.append(err)

    async def drain(self) -> None:
        while any(not t.done() for t in self.tasks):
            await asyncio.gather(*self.tasks)


@dataclass
class Api:
    client: httpx.AsyncClient
    jobs: InlineJobs
    svc: Service
    identity: Standalone
    tokens: dict[str, str] = field(default_factory=dict)

    def user(self, name: str, project: str, *, admin: bool = False) -> str:
        """Create ``project`` (if new) and user ``name`` in it; return a token."""
        if self.identity.tenancy.find_project(project) is None:
            self.identity.create_project(project)
        self.identity.create_user(name, project, "s3cret-pass", admin=admin)
        token, _ = self.identity.authenticate(name, "s3cret-pass")
        self.tokens[name] = token
        return token

    def h(self, user: str) -> dict[str, str]:
        return {
            "X-Auth-Token": self.tokens[user],
            "OpenStack-API-Version": "container-infra latest",
        }
