"""An app of flotte serve on a fresh installation, with ``flotte.jobs``' embedded queue
and worker running ``service.requests.run`` in the test's event loop, and helpers to
authenticate as standalone users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_harness import Api, RecordedJobs

from flotte.api.app import create_app
from flotte.serve_settings import ServeSettings
from flotte.service import Service


@pytest.fixture
async def api(
    serve_database: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """On SQLite, then on PostgreSQL (``fixtures.postgres``)."""
    monkeypatch.setenv("FLOTTE_HOME", str(tmp_path))
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "fake-cloud"))
    monkeypatch.delenv("FLOTTE_DATABASE_URL", raising=False)
    if serve_database:
        monkeypatch.setenv("FLOTTE_DATABASE_URL", serve_database)
    settings = ServeSettings(home=tmp_path, default_driver="fake")
    svc = Service(tmp_path)
    jobs = RecordedJobs(svc)
    await jobs.start()
    app = create_app(settings, service=svc, jobs=jobs)
    identity = app.state.ctx.standalone
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flotte.test") as client:
        try:
            yield Api(client, jobs, svc, identity, app.state.ctx)
            await jobs.drain()
        finally:
            await jobs.stop()
    svc.close()
