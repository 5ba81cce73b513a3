"""What every handler reaches: the installation, identity, quotas, the job queue, and the
caller (``X-Auth-Token`` validated by the standalone identity or by Keystone)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from flotte.api.errors import ApiError
from flotte.api.magnum.list_cache import ListCache
from flotte.identity.keystone import KeystoneValidator
from flotte.identity.principal import Principal, Unauthorized
from flotte.identity.quotas import Quotas
from flotte.identity.standalone import Standalone
from flotte.serve_settings import ServeSettings
from flotte.service import Service
from flotte.service.requests import Serving


class JobQueue(Protocol):
    """The queue the serve command hands the app (``flotte.jobs.Jobs``)."""

    async def submit(
        self, kind: str, payload: dict[str, Any], *, project: str | None, cluster: str | None
    ) -> str: ...


@dataclass
class ApiContext:
    settings: ServeSettings
    svc: Service
    serving: Serving
    quotas: Quotas
    standalone: Standalone | None
    keystone: KeystoneValidator | None
    lists: ListCache = field(default_factory=ListCache)

    async def principal(self, token: str) -> Principal:
        if self.keystone is not None:
            return await self.keystone.validate(token)
        assert self.standalone is not None
        return self.standalone.validate(token)


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def job_queue(request: Request) -> JobQueue:
    jobs: JobQueue | None = getattr(request.app.state, "jobs", None)
    if jobs is None:
        raise ApiError(503, "this server has no job queue: start it with 'flotte serve'")
    return jobs


_token = APIKeyHeader(name="X-Auth-Token", auto_error=False, description="A Keystone token")


async def caller(
    request: Request, token: Annotated[str | None, Depends(_token)] = None
) -> Principal:
    if not token:
        raise Unauthorized("Authentication required: send a token in X-Auth-Token")
    if len(token) > 8192:
        raise Unauthorized("the token is not valid here: authenticate again")
    principal = await context(request).principal(token)
    request.scope.setdefault("state", {})["project_id"] = principal.project_id
    return principal


# The dependencies are async: FastAPI runs a plain def dependency in a thread, a
# hand-off per request that costs more than what it returns.
async def _context_dependency(request: Request) -> ApiContext:
    return context(request)


async def _jobs_dependency(request: Request) -> JobQueue:
    return job_queue(request)


Ctx = Annotated[ApiContext, Depends(_context_dependency)]
Caller = Annotated[Principal, Depends(caller)]
Jobs = Annotated[JobQueue, Depends(_jobs_dependency)]
