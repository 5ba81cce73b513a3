"""Shared fixtures: a private FLOTTE_HOME per test and a CLI runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flotte.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty flotte home; returns its user catalog directory (not yet created)."""
    monkeypatch.setenv("FLOTTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped, so cells can be matched
    return tmp_path / "home" / "config" / "catalog"


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``flotte ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
