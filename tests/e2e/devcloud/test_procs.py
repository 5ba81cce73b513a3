"""Process supervision by recorded PID (no devcloud needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flotte.devcloud import procs
from flotte.devcloud.layout import Layout


def _layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "dc")
    layout.ensure()
    return layout


def test_start_records_pid_and_stop_ends_the_tree(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    # A parent with a child, like a gunicorn master and its worker.
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    rec = procs.start(layout, "svc", [sys.executable, "-c", script])
    procs.wait_until(lambda: bool(procs._descendants(rec.pid)), what="child", timeout=10)
    child = procs._descendants(rec.pid)[0]
    assert procs.running(layout, "svc") == rec
    assert json.loads(layout.pidfile("svc").read_text())["pid"] == rec.pid
    assert procs.stop(layout, "svc") is True
    assert not procs.alive(rec.pid, rec.start_time)
    assert not procs.alive(*child)
    assert not layout.pidfile("svc").exists()
    assert procs.stop(layout, "svc") is False


def test_stop_never_signals_a_reused_pid(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        # A record naming the stranger's PID with another start time: not ours.
        layout.pidfile("svc").write_text(
            json.dumps({"pid": stranger.pid, "start_time": 1, "argv": ["x"]})
        )
        assert procs.running(layout, "svc") is None
        assert procs.stop(layout, "svc") is False
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_dead_process_is_reported_with_its_log(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    procs.start(layout, "broken", [sys.executable, "-c", "raise SystemExit('boom')"])
    try:
        procs.wait_until(lambda: False, what="broken", timeout=30, layout=layout, process="broken")
    except Exception as err:
        assert str(err) == f"broken failed to start: see {layout.log('broken')}"
    else:
        raise AssertionError("wait_until did not fail")
    assert "boom" in layout.log("broken").read_text()
