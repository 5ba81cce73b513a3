"""A full lifecycle per driver with secrets planted where users keep them: none leaks.

The planted values: an OpenStack password and application-credential secret in the
environment (an openrc sourced for another cloud), AWS keys in the environment and, for
EC2, in an AWS credentials file read through a profile. Every command of a lifecycle
(cluster create, resize, node group create/update/delete, machine verbs on a cluster
node, a lone machine, show/inspect/export as json and yaml, delete) runs as the real
``flotte`` CLI with ``--debug``; then every file under FLOTTE_HOME (but 0600 files under
``secrets/``), the database's dump and every output are searched for the values.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.local import ROOT, Flotte

sys.path.insert(0, str(ROOT / "bench"))

from ec2_helpers import ec2_flags
from fault_checks import secret_sightings


def planted(token: str) -> dict[str, str]:
    return {
        "OS_PASSWORD": f"osPwPlanted{token}",
        "OS_APPLICATION_CREDENTIAL_SECRET": f"osAcPlanted{token}",
        "AWS_SECRET_ACCESS_KEY": f"awsSkPlanted{token}",
        "AWS_SESSION_TOKEN": f"awsStPlanted{token}",
    }


def make_flotte(tmp_path: Path, extra: dict[str, str]) -> Flotte:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOTTE_", "OS_", "AWS_"))}
    env.pop("DOCKER_HOST", None)
    env.update(
        FLOTTE_HOME=str(tmp_path / "home"),
        DOCKER_CONFIG=str(tmp_path / "docker"),
        PYTHONPATH=str(ROOT / "src"),
        COLUMNS="200",
        FLOTTE_CHECKIP_URL="http://127.0.0.1:9/",
        **extra,
    )
    return Flotte(home=tmp_path / "home", env=env)


def lifecycle(flotte: Flotte, driver: str, flags: list[str], *, verbs: bool = True) -> list[Any]:
    """Every verb over one cluster and one machine; the results of every command."""
    name = f"sec{uuid.uuid4().hex[:6]}"
    node = f"{name}-node-0"
    machine = f"{name}m"
    d = ["--debug"]
    runs = [
        flotte(*d, "cluster", "create", name, "--driver", driver, "--node-count", "1", *flags),
        flotte(*d, "cluster", "resize", name, "2"),
        flotte(*d, "cluster", "nodegroup", "create", name, "extra", "--node-count", "1"),
        flotte(*d, "cluster", "nodegroup", "update", name, "extra", "--node-count", "2"),
        flotte(*d, "cluster", "nodegroup", "delete", name, "extra"),
        flotte(*d, "cluster", "show", name, "-f", "json"),
        flotte(*d, "cluster", "show", name, "-f", "yaml"),
        flotte(*d, "cluster", "export", name),
        flotte(*d, "cluster", "list", "-f", "json"),
        flotte(*d, "machine", "inspect", node),
        flotte(*d, "machine", "ls", "-f", "json"),
    ]
    if verbs:
        runs += [flotte(*d, "machine", "stop", node), flotte(*d, "machine", "start", node)]
    runs += [
        flotte(*d, "cluster", "resize", name, "1"),
        flotte(*d, "machine", "create", "-d", driver, *flags, machine),
        flotte(*d, "machine", "inspect", machine),
        flotte(*d, "machine", "rm", "-y", machine),
        flotte(*d, "cluster", "delete", name),
    ]
    # a command that fails shows its error line: no secret in it either
    runs.append(flotte(*d, "cluster", "show", name, check=False))
    return runs


def assert_no_secret(flotte: Flotte, secrets: dict[str, str], runs: list[Any]) -> None:
    outputs = [_Out(r.returncode, r.stdout, r.stderr) for r in runs]
    assert secret_sightings(flotte.home, secrets, outputs) == []
    # the search does find what it looks for
    assert secret_sightings(flotte.home, secrets, [_Out(0, secrets["OS_PASSWORD"], "")])


class _Out:
    def __init__(self, rc: int | None, out: str, err: str) -> None:
        self.rc, self.out, self.err = rc, out, err


def test_fake_lifecycle_keeps_every_secret_out(tmp_path: Path) -> None:
    secrets = planted(uuid.uuid4().hex[:8])
    flotte = make_flotte(tmp_path, {"FLOTTE_FAKE_DIR": str(tmp_path / "cloud"), **secrets})
    runs = lifecycle(flotte, "fake", ["--no-provision"])
    assert_no_secret(flotte, secrets, runs)


def test_ec2_lifecycle_keeps_every_secret_out(tmp_path: Path, moto_endpoint: str) -> None:
    secrets = planted(uuid.uuid4().hex[:8])
    creds = tmp_path / "aws-credentials"
    creds.write_text(
        "[planted]\naws_access_key_id = AKIAPLANTEDSECRET001\n"
        f"aws_secret_access_key = {secrets['AWS_SECRET_ACCESS_KEY']}\n"
        f"aws_session_token = {secrets['AWS_SESSION_TOKEN']}\n"
    )
    creds.chmod(0o600)
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_PROFILE": "planted",
        "AWS_EC2_METADATA_DISABLED": "true",
        "FLOTTE_EC2_POLL": "0.1",
        "OS_PASSWORD": secrets["OS_PASSWORD"],
        "OS_APPLICATION_CREDENTIAL_SECRET": secrets["OS_APPLICATION_CREDENTIAL_SECRET"],
    }
    flotte = make_flotte(tmp_path, env)
    runs = lifecycle(flotte, "ec2", [*ec2_flags(moto_endpoint), "--no-provision"])
    assert_no_secret(flotte, secrets, runs)


@pytest.mark.docker
def test_local_lifecycle_keeps_every_secret_out(tmp_path: Path, node_image: str) -> None:
    secrets = planted(uuid.uuid4().hex[:8])
    flotte = make_flotte(tmp_path, secrets)
    runs = lifecycle(flotte, "local", [], verbs=False)
    assert_no_secret(flotte, secrets, runs)


@pytest.mark.docker
def test_ssh_lifecycle_keeps_every_secret_out(
    tmp_path: Path,
    ssh_lab: Any,
    ssh_host: Any,
) -> None:
    """Existing hosts over SSH (the sshd test hosts). The ssh driver takes no key
    passphrase nor sudo password (a key without one, passwordless sudo): the planted
    secrets are the OS_ and AWS_ variables of the other tests."""
    secrets = planted(uuid.uuid4().hex[:8])
    flotte = make_flotte(tmp_path, secrets)
    hosts = [ssh_host("docker").ip for _ in range(3)]
    name = f"sec{uuid.uuid4().hex[:6]}"
    key = ["--ssh-key", str(ssh_lab.key)]
    d = ["--debug"]
    runs = [
        flotte(
            *d, "cluster", "create", name, "--driver", "ssh", "--hosts", ",".join(hosts[:2]),
            "--master-count", "1", "--node-count", "1", *key,
        ),
        flotte(*d, "cluster", "resize", name, "2", "--hosts", hosts[2]),
        flotte(*d, "cluster", "show", name, "-f", "json"),
        flotte(*d, "cluster", "show", name, "-f", "yaml"),
        flotte(*d, "cluster", "export", name),
        flotte(*d, "cluster", "list", "-f", "json"),
        flotte(*d, "machine", "inspect", f"{name}-node-0"),
        flotte(*d, "machine", "ls", "-f", "json"),
        flotte(*d, "cluster", "resize", name, "1", "--nodes-to-remove", f"{name}-node-1"),
        flotte(*d, "machine", "create", "-d", "ssh", "--ssh-host", hosts[2], *key, f"{name}m"),
        flotte(*d, "machine", "inspect", f"{name}m"),
        flotte(*d, "machine", "rm", "-y", f"{name}m"),
        flotte(*d, "cluster", "delete", name),
        flotte(*d, "cluster", "show", name, check=False),
    ]  # fmt: skip
    assert_no_secret(flotte, secrets, runs)
