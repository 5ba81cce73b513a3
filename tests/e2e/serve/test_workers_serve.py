"""The ``flotte serve`` command itself: bad input, HTTPS, metrics, its heartbeat row,
one embedded worker per installation, a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fixtures.moto_server import free_port
from flotte.pki import CertificateAuthority
from flotte.state.store import Store
from flotte.state.tenancy import TenancyStore

FLOTTE = [sys.executable, "-m", "flotte.cli.main"]


def flotte(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOTTE, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k != "FLOTTE_DATABASE_URL"}
    return {**clean, "FLOTTE_HOME": str(tmp_path / "home")}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--database-url", "postgresql+psycopg://u:pl4nted@127.0.0.1/x"], "~/.pgpass"),
        (["--database-url", "not a url"], "is not a database URL"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "no such file"),
        (["--identity", "keystone"], "Keystone mode needs keystone_url"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_starts_nothing(
    env: dict[str, str], args: list[str], says: str
) -> None:
    done = flotte("serve", "--port", str(free_port()), *args, env=env)
    assert done.returncode != 0
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pl4nted" not in done.stderr  # a password is never echoed


def test_unreachable_database_names_it_without_its_password(env: dict[str, str]) -> None:
    env = {
        **env,
        "FLOTTE_DATABASE_URL": f"postgresql+psycopg://u:pl4nted@127.0.0.1:{free_port()}/x",
    }
    done = flotte("serve", env=env)
    assert done.returncode != 0 and "cannot open the state database" in done.stderr
    assert "pl4nted" not in done.stderr and "Traceback" not in done.stderr


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return response.status, response.read().decode()


def test_https_metrics_heartbeat_one_embedded_worker_and_a_clean_stop(
    env: dict[str, str], tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path / "ca").ensure()
    cert = ca.server_cert("serve", ["127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert.cert_pem)
    (tmp_path / "key.pem").write_bytes(cert.key_pem)
    (tmp_path / "key.pem").chmod(0o600)
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*FLOTTE, "serve", "--port", str(port), "--name", "serve-under-test",
         "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca.ca_path))
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"https://127.0.0.1:{port}/healthz", context)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "flotte serve did not answer"
                time.sleep(0.2)
        assert status == 200 and '"ok"' in body
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _get(f"http://127.0.0.1:{port}/healthz")  # HTTPS only once a cert is given

        _, metrics = _get(f"https://127.0.0.1:{port}/metrics", context)
        assert 'flotte_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics
        assert "# TYPE flotte_clusters gauge" in metrics
        assert "# TYPE flotte_job_duration_seconds histogram" in metrics

        store = Store.at(Path(env["FLOTTE_HOME"]) / "flotte.db")
        rows = [p for p in TenancyStore(store).processes() if p.name == "serve-under-test"]
        assert len(rows) == 1 and rows[0].pid == proc.pid and rows[0].roles == "api,worker"
        store.close()

        # A second serve on the same SQLite installation would take back the first's jobs.
        second = flotte("serve", "--port", str(free_port()), env=env)
        assert second.returncode != 0
        assert "another flotte serve already runs the jobs" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
