"""Broken state on disk: one line each, what is wrong and what to do, nothing overwritten.

Every case runs the real ``flotte`` command. Read-only cases run it as an unprivileged
user (root ignores file modes) or inside a mount namespace where the home is mounted
read-only, as on a shared or backed-up copy of a home.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

FLOTTE = str(Path(sys.executable).with_name("flotte"))
NOBODY = 65534
READERS = [["machine", "ls"], ["cluster", "list"], ["template", "list"]]
WRITER = ["template", "create", "t2", "--coe", "swarm", "--driver", "local"]


def run(
    home: Path, *args: str, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOTTE_HOME": str(home), "DOCKER_CONFIG": str(home / "docker")}
    env.pop("FLOTTE_DATABASE_URL", None)
    return subprocess.run(
        [*(prefix or []), FLOTTE, *args], env=env, capture_output=True, text=True, timeout=120
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def digest(directory: Path) -> dict[str, str]:
    """Every file's hash; SQLite's own -wal/-shm files (a reader may make them) aside."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith((".lock", "-wal", "-shm"))
    }


@pytest.fixture
def home() -> Iterator[Path]:
    """A home with a template, and rows enough to span many pages.

    It is made outside pytest's temporary directory, which other pytest sessions on
    this machine set back to 0700 at any time (the unprivileged user must get through).
    """
    top = Path(tempfile.mkdtemp(prefix="flotte-broken-state-"))
    top.chmod(0o755)
    try:
        yield _filled(top / "home")
    finally:
        for p in [top, *top.rglob("*")]:
            with contextlib.suppress(OSError):
                p.chmod(0o700 if p.is_dir() else 0o600)
        shutil.rmtree(top, ignore_errors=True)


def _filled(home: Path) -> Path:
    assert (
        run(home, "template", "create", "t1", "--coe", "swarm", "--driver", "local").returncode == 0
    )
    # enough rows (in a table every schema has) for the file to span many pages
    conn = sqlite3.connect(home / "flotte.db")
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)", [(f"pad-{n}", "x" * 500) for n in range(400)]
    )
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return home


def test_new_home_is_private(tmp_path: Path) -> None:
    home = tmp_path / "new"
    assert run(home, "machine", "ls").returncode == 0
    assert stat.S_IMODE((home / "flotte.db").stat().st_mode) == 0o600
    for d in (home, home / "locks", home / "secrets", home / "config"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_an_old_world_readable_database_is_tightened(home: Path) -> None:
    (home / "flotte.db").chmod(0o644)
    home.chmod(0o755)
    assert run(home, "template", "list").returncode == 0
    assert stat.S_IMODE((home / "flotte.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_file_that_is_not_a_database(home: Path) -> None:
    (home / "flotte.db").write_bytes(b"these are not the pages you are looking for\n" * 100)
    before = digest(home)
    for args in READERS:
        one_line_error(run(home, *args), "is damaged", "flotte.db", "backup")
    assert digest(home) == before


def test_a_truncated_database(home: Path) -> None:
    db = home / "flotte.db"
    size = db.stat().st_size
    assert size > 100_000
    with db.open("r+b") as f:
        f.truncate(size // 3)
    before = digest(home)
    line = one_line_error(run(home, "template", "list"), "is damaged", "backup")
    assert "malformed" in line or "not a database" in line
    assert digest(home) == before


def test_a_database_from_a_newer_flotte(home: Path) -> None:
    conn = sqlite3.connect(home / "flotte.db")
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    before = digest(home)
    for args in [*READERS, WRITER]:
        one_line_error(run(home, *args), "newer flotte", "9999", "upgrade flotte")
    assert digest(home) == before


def test_a_database_of_something_else(tmp_path: Path) -> None:
    home = tmp_path / "other"
    home.mkdir()
    conn = sqlite3.connect(home / "flotte.db")
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    before = digest(home)
    one_line_error(run(home, "machine", "ls"), "not a flotte state database", "photos")
    assert digest(home) == before


def _give_to_nobody(home: Path) -> None:
    for p in [home, *home.rglob("*")]:
        os.chown(p, NOBODY, NOBODY)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_a_read_only_database_file(home: Path) -> None:
    _give_to_nobody(home)
    (home / "flotte.db").chmod(0o400)
    before = digest(home)
    for args in READERS:
        proc = run(home, *args, prefix=AS_NOBODY)
        assert proc.returncode == 0, proc.stderr
    assert "t1" in run(home, "template", "list", prefix=AS_NOBODY).stdout
    one_line_error(run(home, *WRITER, prefix=AS_NOBODY), "read-only", "cannot write the file")
    assert digest(home) == before


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_a_home_the_user_cannot_write(home: Path) -> None:
    _give_to_nobody(home)
    for p in [home, *home.rglob("*")]:
        p.chmod(0o500 if p.is_dir() else 0o400)
    before = digest(home)
    try:
        for args in READERS:
            proc = run(home, *args, prefix=AS_NOBODY)
            assert proc.returncode == 0, proc.stderr
        assert "t1" in run(home, "template", "list", prefix=AS_NOBODY).stdout
        one_line_error(run(home, *WRITER, prefix=AS_NOBODY), "read-only", "cannot write in")
    finally:
        for p in [home, *home.rglob("*")]:
            p.chmod(0o700 if p.is_dir() else 0o600)
    assert digest(home) == before


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs mount namespaces")
def test_a_home_on_a_read_only_mount(home: Path) -> None:
    shutil.rmtree(home / "config")  # a directory a newer flotte would make: not there
    before = digest(home)
    q = str(home).replace("'", "")
    script = (
        f"mount --bind -o ro '{q}' '{q}' && "
        + " && ".join(f"{FLOTTE} {' '.join(a)}" for a in READERS)
        + f"; {FLOTTE} {' '.join(WRITER)}"
    )
    env = {**os.environ, "FLOTTE_HOME": str(home), "DOCKER_CONFIG": str(home / "docker")}
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert "t1" in proc.stdout and "NAME" in proc.stdout, proc.stderr
    one_line_error(proc, "read-only file system")
    assert digest(home) == before
