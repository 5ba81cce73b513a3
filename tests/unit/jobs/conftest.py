"""The job backends' tests: a Service on the fake cloud and a given state database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flotte.service import Service


def service_on(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv("FLOTTE_FAKE_DIR", str(tmp_path / "cloud"))
    monkeypatch.setenv("FLOTTE_DATABASE_URL", url)
    s = Service(tmp_path / "home")
    yield s
    s.close()


@pytest.fixture
def svc(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """On each state database in turn (SQLite; PostgreSQL on loopback)."""
    yield from service_on(database_url, tmp_path, monkeypatch)


@pytest.fixture
def pg_svc(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """On PostgreSQL only."""
    yield from service_on(pg_url, tmp_path, monkeypatch)
