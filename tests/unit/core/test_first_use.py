"""First use of a new FLOTTE_HOME by many processes at once, and lock files that go.

Every process does what a command does when it starts (the directories, the state
database, the CA); the home they leave behind is then checked with independent tools
(``sqlite3`` and ``cryptography`` directly, not flotte's own checks).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import threading
import time
import traceback
from pathlib import Path

import alembic.command  # noqa: F401  (imported once here, not in each child)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flotte.config import paths, write_public, write_secret
from flotte.pki import CertificateAuthority
from flotte.state.lock import locked, sweep
from flotte.state.store import Store

# The issue saw the race in 4 of 30 rounds; bench/first_use_race.py runs 30 for the figure.
ROUNDS, PARALLEL = 15, 12


def _spki(obj: object) -> bytes:
    return obj.public_key().public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def home_problems(home: Path) -> list[str]:
    """What is wrong with a home after first use (empty when it is consistent)."""
    problems = []
    certs, ca_dir = home / "secrets" / "certs", home / "secrets" / "ca"
    try:
        ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
        ca_key = serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), None)
        client = x509.load_pem_x509_certificate((certs / "cert.pem").read_bytes())
        client_key = serialization.load_pem_private_key((certs / "key.pem").read_bytes(), None)
        if _spki(ca_key) != _spki(ca):
            problems.append("CA key does not match the CA certificate")
        try:
            client.verify_directly_issued_by(ca)
        except Exception:
            problems.append("client certificate not signed by the CA")
        if _spki(client_key) != _spki(client):
            problems.append("client key does not match the client certificate")
    except (OSError, ValueError) as err:
        problems.append(f"certificates unreadable: {err}")
    db = home / "flotte.db"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                problems.append("database integrity check failed")
            ids = conn.execute("SELECT value FROM meta WHERE key='installation'").fetchall()
            if len(ids) != 1:
                problems.append(f"{len(ids)} installation ids")
        finally:
            conn.close()
    except sqlite3.Error as err:
        problems.append(f"database: {err}")
    for path, mode in [(db, 0o600), (home, 0o700), (home / "locks", 0o700)]:
        if path.exists() and stat.S_IMODE(path.stat().st_mode) != mode:
            problems.append(f"{path.name} is {oct(stat.S_IMODE(path.stat().st_mode))}")
    leftovers = [p.name for p in home.rglob("*.tmp")]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    return problems


def _start(home: str, go: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One command's start: what Service() does, in a process of its own."""
    go.wait()
    try:
        p = paths(home).ensure()
        store = Store.at(p.database)
        CertificateAuthority(p.certs).ensure()
        out.put(("ok", store.installation))
    except BaseException:
        out.put(("error", traceback.format_exc(limit=3)))


def test_twelve_processes_share_a_new_home_thirty_times(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    failures, bad_homes = [], []
    for n in range(ROUNDS):
        home = tmp_path / f"home-{n}"
        go, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_start, args=(str(home), go, out)) for _ in range(PARALLEL)]
        for p in procs:
            p.start()
        go.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        failures += [r[1] for r in results if r[0] != "ok"]
        ids = {r[1] for r in results if r[0] == "ok"}
        problems = home_problems(home)
        if len(ids) > 1:
            problems.append(f"processes saw {len(ids)} installation ids")
        if problems:
            bad_homes.append((n, problems))
    assert not failures, f"{len(failures)} of {ROUNDS * PARALLEL} failed; first: {failures[0]}"
    assert not bad_homes, bad_homes[:3]


def test_writes_use_their_own_temporary_files(tmp_path: Path) -> None:
    """Many threads replacing one file: every reader sees one whole version, never an error."""
    target = tmp_path / "secret.pem"
    versions = [bytes([65 + i]) * 50_000 for i in range(8)]
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(40):
                (write_secret if data[0] % 2 else write_public)(target, data)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    seen = set()
    while any(t.is_alive() for t in threads):
        if target.exists():
            seen.add(target.read_bytes())
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert seen <= set(versions)
    assert not list(tmp_path.glob(".*.tmp"))


def test_lock_files_do_not_pile_up(tmp_path: Path) -> None:
    for n in range(50):
        with locked(tmp_path, "machine", f"m{n}"):
            assert (tmp_path / f"machine-m{n}.lock").exists()
    assert list(tmp_path.iterdir()) == []


def _hold(directory: str, name: str, hold: float, log: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with locked(Path(directory), "cluster", name, wait=60):
        log.put(("in", os.getpid(), time.monotonic()))
        time.sleep(hold)
        log.put(("out", os.getpid(), time.monotonic()))


def test_removing_lock_files_keeps_mutual_exclusion(tmp_path: Path) -> None:
    """Holders unlink their file while others wait on it: still one holder at a time."""
    ctx = multiprocessing.get_context("fork")
    log = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), "c", 0.02, log)) for _ in range(16)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    events = sorted((log.get() for _ in range(32)), key=lambda e: e[2])
    inside = 0
    for kind, _pid, _at in events:
        inside += 1 if kind == "in" else -1
        assert inside in (0, 1), "two commands held the same lock"
    assert all(p.exitcode == 0 for p in procs)
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_leftovers_but_not_held_locks(tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / f"machine-old{n}.lock").write_text("123")
    with locked(tmp_path, "cluster", "busy"):
        assert sweep(tmp_path) == 5
        assert [p.name for p in tmp_path.iterdir()] == ["cluster-busy.lock"]
    assert list(tmp_path.iterdir()) == []
