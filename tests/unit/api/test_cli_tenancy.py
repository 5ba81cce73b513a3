"""``flotte project|user|account``: one clear line and a non-zero exit for bad input,
nothing changed; secrets never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cli_zygote import run_cli

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = dict(os.environ, FLOTTE_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT / "src"))
    env.pop("FLOTTE_DATABASE_URL", None)

    def run(*args: str, stdin: str = "", code: int = 0) -> subprocess.CompletedProcess[str]:
        res = run_cli([sys.executable, "-m", "flotte.cli.main", *args], env, 120, stdin)
        assert res.returncode == code, (args, res.stdout, res.stderr)
        if code:
            assert res.stderr.startswith("Error: ") and "Traceback" not in res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        return res

    return run


def test_projects_and_users(cli) -> None:  # type: ignore[no-untyped-def]
    cli("project", "create", "lab")
    assert "already exists" in cli("project", "create", "lab", code=2).stderr
    assert "invalid project name" in cli("project", "create", "no spaces", code=2).stderr
    cli("user", "create", "alice", "--project", "lab", "--password-stdin", stdin="long-password\n")
    assert (
        "already exists"
        in cli(
            "user",
            "create",
            "alice",
            "--project",
            "lab",
            "--password-stdin",
            stdin="long-password\n",
            code=2,
        ).stderr
    )
    assert (
        "at least 8"
        in cli(
            "user", "create", "bob", "--project", "lab", "--password-stdin", stdin="short\n", code=2
        ).stderr
    )
    assert "--password-stdin" in cli("user", "create", "bob", "--project", "lab", code=2).stderr
    assert (
        "not found"
        in cli(
            "user",
            "create",
            "bob",
            "--project",
            "nope",
            "--password-stdin",
            stdin="long-password\n",
            code=2,
        ).stderr
    )
    listed = cli("user", "list", "-f", "json").stdout
    assert "alice" in listed and "argon2" not in listed and "bob" not in listed
    assert "not found" in cli("user", "delete", "ghost", code=2).stderr
    cli("user", "delete", "alice")
    cli("project", "delete", "lab")
    assert cli("project", "list", "-f", "json").stdout.strip() == "[]"


def test_accounts(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("project", "create", "lab")
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value-xyz\n")
    out = cli(
        "account", "add", "--project", "lab", "--driver", "openstack",
        "--openstack-auth-url", "http://keystone.example/v3", "--openstack-username", "u",
        "--openstack-password-file", str(secret), "-f", "json",
    ).stdout  # fmt: skip
    assert "openstack_password" in out and "s3cr3t" not in out
    listed = cli("account", "list", "-f", "json").stdout
    assert "openstack_password" in listed and "s3cr3t" not in listed
    assert (
        "unknown driver"
        in cli("account", "add", "--project", "lab", "--driver", "vmware", code=2).stderr.lower()
    )
    assert (
        "at least one option"
        in cli("account", "add", "--project", "lab", "--driver", "ec2", code=2).stderr
    )
    assert "is in no clouds.yaml" in cli(
        "account", "add", "--project", "lab", "--driver", "openstack", "--openstack-cloud", "nowhere",
        "--clouds-yaml", str(tmp_path / "clouds.yaml"), code=2,
    ).stderr  # fmt: skip
    cli("account", "remove", "--project", "lab", "--driver", "openstack")
    assert (
        "has no openstack account"
        in cli("account", "remove", "--project", "lab", "--driver", "openstack", code=2).stderr
    )
