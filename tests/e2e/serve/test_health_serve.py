"""Auto-healing inside ``flotte serve``: its worker heals labelled clusters by itself,
and ``/metrics`` counts checks, replacements and nodes by health.

The cluster is on the ``fake`` cloud (a file); the fault is made by the test in that
file, out of band, as an outage would.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from fixtures.moto_server import free_port

FLOTTE = [sys.executable, "-m", "flotte.cli.main"]


def metric(page: str, name: str) -> float:
    """The value of an unlabelled sample (or the sum of a labelled one's samples)."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(name) and not line.startswith("#")
    ]
    return sum(values)


def test_serve_workers_heal_and_metrics_count(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "FLOTTE_DATABASE_URL"}
    env = {**clean, "FLOTTE_HOME": str(tmp_path / "home"), "FLOTTE_FAKE_DIR": str(tmp_path / "c")}

    def flotte(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*FLOTTE, *args], env=env, capture_output=True, text=True, timeout=120
        )

    made = flotte(
        "cluster", "create", "sv", "--driver", "fake", "--node-count", "2", "--no-provision",
        "--labels", "auto_healing_enabled=true",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    bad = flotte("serve", "--port", str(free_port()), "--heal-interval", "0.5")
    assert bad.returncode != 0 and "--heal-interval must be at least 1 second" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*FLOTTE, "serve", "--port", str(port), "--heal-interval", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def page() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def wait_for(what: str, ok: object, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ok():  # type: ignore[operator]
                    return
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (
                f"{what}; log:\n" + (tmp_path / "serve.log").read_text()
            )
            time.sleep(0.3)

    try:
        wait_for("a healthy check counted", lambda: 'health="healthy"} 3.0' in page())
        # an outage: node-1's resource is gone from the fake cloud
        cloud = tmp_path / "c"
        with (cloud / "cloud.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads((cloud / "cloud.json").read_text())
            rid = next(k for k, r in data["resources"].items() if r.get("name") == "sv-node-1")
            del data["resources"][rid]
            (cloud / "cloud.json").write_text(json.dumps(data))
        wait_for(
            "one replacement counted",
            lambda: metric(page(), "flotte_heal_replacements_total") == 1.0,
        )
        wait_for("healthy again", lambda: 'health="healthy"} 3.0' in page())
        final = metrics = page()
        assert metric(metrics, 'flotte_health_changes_total{status="UNHEALTHY"}') == 1.0
        assert 'flotte_nodes_by_health{health="unhealthy"} 0.0' in final
        show = json.loads(flotte("cluster", "show", "sv", "-f", "json").stdout)
        assert show["health_status"] == "HEALTHY"
        assert sorted(n["name"] for n in show["nodes"]) == ["sv-master-0", "sv-node-0", "sv-node-2"]
        events = flotte("cluster", "events", "sv", "-f", "json")
        assert "replaced sv-node-1 by sv-node-2" in events.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
        flotte("cluster", "delete", "sv")
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (
        "cluster sv: healed: replaced sv-node-1 by sv-node-2"
        in (tmp_path / "serve.log").read_text()
    )
