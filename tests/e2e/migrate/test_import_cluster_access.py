"""``flotte cluster export-access`` on one computer, ``flotte machine import FILE`` on another.

A real 2-node Swarm of the local driver; the bundle gives a second FLOTTE_HOME (its own
Docker CLI config) use of every engine: ``docker --context flotte-CLUSTER`` reaches the
manager, each node is a use-only machine there, and removing them there leaves the
cluster running here.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from test_import_cli import docker_cli, make_flotte, one_line_error

from fixtures.local import Flotte

pytestmark = pytest.mark.docker


def test_cluster_access_bundle_reaches_every_engine(flotte: Flotte, tmp_path: Path) -> None:
    name = f"share-{uuid.uuid4().hex[:6]}"  # local container names are machine-wide
    flotte("cluster", "create", name, "--driver", "local", "--node-count", "1", timeout=600)
    try:
        (tmp_path / "pass").write_text("a passphrase for the lab\n")
        bundle = tmp_path / "lab.bundle"
        out = flotte(
            "cluster", "export-access", name, "-o", str(bundle),
            "--passphrase-file", str(tmp_path / "pass"),
        )  # fmt: skip
        assert "use access" in out.stdout and bundle.stat().st_mode & 0o777 == 0o600

        b = make_flotte(tmp_path / "b")
        res = b("machine", "import", str(bundle), "--passphrase-file", str(tmp_path / "pass"))
        assert f"docker --context flotte-{name} ps" in res.stdout
        nodes = docker_cli(
            b, "--context", f"flotte-{name}", "node", "ls", "--format", "{{.Hostname}}"
        )
        assert nodes.returncode == 0, nodes.stderr
        assert len(nodes.stdout.split()) == 2
        rows = json.loads(b("machine", "ls", "-f", "json").stdout)
        assert sorted(r["name"] for r in rows) == [f"{name}-master-0", f"{name}-node-0"]
        assert all(r["state"] == "Running" for r in rows), rows
        refused = b("machine", "stop", f"{name}-node-0", check=False)
        assert "stop refused" in one_line_error(refused)
        again = b(
            "machine",
            "import",
            str(bundle),
            "--passphrase-file",
            str(tmp_path / "pass"),
            check=False,
        )
        assert "already exists" in one_line_error(again)

        b("machine", "rm", "-y", f"{name}-master-0", f"{name}-node-0")
        assert b("machine", "ls", "-q").stdout == ""
        assert docker_cli(b, "--context", f"flotte-{name}", "ps").returncode != 0  # context gone
        assert not list((tmp_path / "b" / "docker" / "contexts" / "meta").glob("*"))
        here = json.loads(flotte("machine", "ls", "-f", "json").stdout)
        assert all(r["state"] == "Running" for r in here)  # the owner's cluster is untouched
    finally:
        flotte("cluster", "delete", name, check=False, timeout=600)
