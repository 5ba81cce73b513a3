"""``flotte machine export`` on one computer, ``flotte machine import FILE`` on another.

Two FLOTTE_HOMEs (with their own Docker CLI configs) stand for two computers; the machine
is a real host docker-machine set up, imported on the first. Bad bundles (wrong
passphrase, cut short, one byte changed, sealed for another key) and a name already
taken are one line each and write nothing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_import_cli import docker_cli, make_flotte, one_line_error

import fixtures.sshd_hosts as _sshd
from fixtures.docker_machine import MachineTLS, generic_driver, write_machine
from fixtures.local import Flotte

pytestmark = pytest.mark.docker

PASSPHRASE = "correct horse battery staple"


def written(flotte: Flotte) -> list[str]:
    """What an installation holds: machines recorded, files under secrets/machines."""
    names = flotte("machine", "ls", "-q").stdout.split()
    files = sorted(str(p) for p in (flotte.home / "secrets" / "machines").rglob("*"))
    return names + files


@pytest.fixture
def computer_a(
    machine_host: tuple[Any, MachineTLS], ssh_lab: _sshd.SSHLab, tmp_path: Path
) -> Flotte:
    host, tls = machine_host
    store = tmp_path / "docker-machine"
    write_machine(
        store, "web", "generic", generic_driver(store, "web", host.ip), tls,
        ssh_key=ssh_lab.key.read_bytes(),
    )  # fmt: skip
    a = make_flotte(tmp_path / "a")
    a("machine", "import", "--from-docker-machine", "-s", str(store))
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    return a


def test_use_bundle_gives_a_working_context_and_nothing_more(
    computer_a: Flotte, tmp_path: Path
) -> None:
    bundle = tmp_path / "web.bundle"
    out = computer_a(
        "machine", "export", "web", "-o", str(bundle), "--passphrase-file", str(tmp_path / "pass")
    )
    assert "use access" in out.stdout
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert PASSPHRASE.encode() not in bundle.read_bytes()
    assert b"BEGIN RSA PRIVATE KEY" not in bundle.read_bytes()  # sealed

    b = make_flotte(tmp_path / "b")
    res = b("machine", "import", str(bundle), "--passphrase-file", str(tmp_path / "pass"))
    assert res.stdout.splitlines()[0].startswith("web: imported: use, tcp://")
    assert docker_cli(b, "--context", "flotte-web", "ps").returncode == 0
    (row,) = json.loads(b("machine", "ls", "-f", "json").stdout)
    assert row["state"] == "Running"
    # use only: no SSH key came along, and flotte there never changes the host
    record = json.loads(b("machine", "inspect", "web").stdout)["record"]
    assert record["data"]["imported"] == {
        "from": "bundle", "access": "use", "rm": "forget", "read_only": True
    }  # fmt: skip
    assert "stop refused" in one_line_error(b("machine", "stop", "web", check=False))
    assert not list((b.home / "secrets" / "machines" / "web").glob("keys"))

    # a second import over the same name: one line, nothing written
    before = written(b)
    again = b(
        "machine", "import", str(bundle), "--passphrase-file", str(tmp_path / "pass"), check=False
    )
    assert "already exists" in one_line_error(again)
    assert written(b) == before

    b("machine", "rm", "-y", "web")
    assert written(b) == []
    assert docker_cli(computer_a, "--context", "flotte-web", "ps").returncode == 0  # A unaffected


def test_bad_bundles_are_one_line_and_write_nothing(computer_a: Flotte, tmp_path: Path) -> None:
    bundle = tmp_path / "web.bundle"
    computer_a(
        "machine", "export", "web", "-o", str(bundle), "--passphrase-file", str(tmp_path / "pass")
    )
    data = bundle.read_bytes()
    b = make_flotte(tmp_path / "b")
    before = written(b)
    (tmp_path / "wrong").write_text("not the passphrase at all\n")
    cases = {
        "wrong passphrase": (data, tmp_path / "wrong"),
        "is truncated": (data[: len(data) - 40], tmp_path / "pass"),
        "was changed": (data[:-10] + bytes([data[-10] ^ 1]) + data[-9:], tmp_path / "pass"),
        "not a flotte bundle": (b"hello" + data, tmp_path / "pass"),
    }
    for said, (content, passfile) in cases.items():
        bad = tmp_path / "bad.bundle"
        bad.write_bytes(content)
        res = b("machine", "import", str(bad), "--passphrase-file", str(passfile), check=False)
        assert said in one_line_error(res), said
        assert written(b) == before, said
    exists = computer_a(
        "machine", "export", "web", "-o", str(bundle), "--passphrase-file", str(tmp_path / "pass"),
        check=False,
    )  # fmt: skip
    assert "already exists" in one_line_error(exists)


def test_owner_bundle_for_a_public_key_carries_ssh(computer_a: Flotte, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    bundle = tmp_path / "web-owner.bundle"
    computer_a(
        "machine", "export", "web", "--owner", "-o", str(bundle), "--to", f"{key}.pub"
    )  # fmt: skip
    b = make_flotte(tmp_path / "b")
    other = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30
    )
    res = b("machine", "import", str(bundle), "--identity", str(other), check=False)
    assert "sealed for another key" in one_line_error(res)
    b("machine", "import", str(bundle), "--identity", str(key))
    assert docker_cli(b, "--context", "flotte-web", "ps").returncode == 0
    assert b("machine", "ssh", "web", "hostname").returncode == 0
    assert b("machine", "status", "web").stdout.strip() == "Running"
