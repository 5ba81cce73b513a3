"""``flotte machine`` with the talk's docker-machine command, against devcloud."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import openstack.exceptions
import pytest
import yaml
from os_helpers import DEMO, Cloud, leaked

from flotte.sshkeys import new_keypair as generate_key

FLOTTE = str(Path(sys.executable).with_name("flotte"))


@pytest.fixture
def openrc(cloud: Cloud) -> dict[str, str]:
    """The environment an OpenStack user sources (openrc): OS_* variables, no clouds.yaml."""
    auth = yaml.safe_load(cloud.clouds_yaml.read_text())["clouds"][DEMO]["auth"]
    return {
        "OS_AUTH_URL": auth["auth_url"],
        "OS_USERNAME": auth["username"],
        "OS_PASSWORD": auth["password"],
        "OS_TENANT_NAME": auth["project_name"],
        "OS_DOMAIN_NAME": "Default",
    }


def flotte(
    home: Path, env: dict[str, str], *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    full.update({"FLOTTE_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **env})
    proc = subprocess.run(
        [FLOTTE, *args], env=full, capture_output=True, text=True, timeout=300, check=False
    )
    if ok:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_talk_command_through_the_cli(
    cloud: Cloud, tmp_path: Path, openrc: dict[str, str], image_id: str
) -> None:
    home = tmp_path / "flotte-home"
    key = tmp_path / "securekey"
    generate_key(key)
    keypair = f"securekey-{tmp_path.name[-10:]}"
    compute = cloud.connection().compute
    compute.create_keypair(name=keypair, public_key=Path(f"{key}.pub").read_text())
    before = cloud.inventory()
    try:
        # The talk's command, with `flotte machine create` in front and devcloud's values.
        flotte(
            home, openrc,
            "machine", "create", "-d", "openstack",
            "--openstack-flavor-id", "2",
            "--openstack-net-name", "formation-net",
            "--openstack-floatingip-pool", "ext-net",
            "--openstack-image-id", image_id,
            "--openstack-keypair-name", keypair,
            "--openstack-private-key-file", str(key),
            "--openstack-ssh-user", "centos",
            "--no-provision",
            "mydockervm",
        )  # fmt: skip
        rows = json.loads(flotte(home, openrc, "machine", "ls", "-f", "json").stdout)
        (row,) = [r for r in rows if r["name"] == "mydockervm"]
        assert row["driver"] == "openstack" and row["state"] == "Running"
        inspected = flotte(home, openrc, "machine", "inspect", "mydockervm").stdout
        assert openrc["OS_PASSWORD"] not in inspected
        # ours: the one server of that name made since `before` (a failed run may leave one)
        servers = [
            s for s in cloud.servers() if s.name == "mydockervm" and s.id not in before["server"]
        ]
        assert len(servers) == 1 and servers[0].status == "ACTIVE"

        flotte(home, openrc, "machine", "stop", "mydockervm")
        assert cloud.server(servers[0].id).status == "SHUTOFF"
        flotte(home, openrc, "machine", "start", "mydockervm")
        assert cloud.server(servers[0].id).status == "ACTIVE"
        flotte(home, openrc, "machine", "rm", "-y", "mydockervm")
        assert "mydockervm" not in flotte(home, openrc, "machine", "ls", "-q").stdout
        assert leaked(cloud, before) == {}
    finally:
        with contextlib.suppress(openstack.exceptions.SDKException):
            compute.delete_keypair(keypair)


def test_cli_wrong_password_is_one_line(
    cloud: Cloud, tmp_path: Path, openrc: dict[str, str], image_id: str
) -> None:
    before = cloud.inventory()
    proc = flotte(
        tmp_path / "home", {**openrc, "OS_PASSWORD": "wrong"},
        "machine", "create", "-d", "openstack", "--openstack-flavor-id", "2",
        "--openstack-image-id", image_id, "--openstack-net-name", "formation-net",
        "--no-provision", "badpw",
        ok=False,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0], proc.stderr
    assert "wrong" not in lines[0]
    assert leaked(cloud, before) == {}
