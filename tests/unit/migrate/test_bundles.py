"""Sealed bundles: round trips between two directories, and every way a file can be wrong."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fixtures.docker_machine import make_tls
from flotte.client_tls import ClientTLS
from flotte.errors import UsageError
from flotte.models import Endpoint, NodeRecord
from flotte.share import Access, Bundle, SharedNode, identity_key, recipient_key, sealed

PASS = "correct horse battery staple"


@pytest.fixture(scope="module")
def machine_tls():
    return make_tls("10.9.8.7")


@pytest.fixture
def exporter(tmp_path: Path, machine_tls) -> tuple[Bundle, Path]:
    """An owner bundle of an OpenStack machine as the exporting computer has it."""
    home = tmp_path / "computer-a"
    tls = ClientTLS(machine_tls.ca_pem, machine_tls.cert_pem, machine_tls.key_pem)
    tls_dir = tls.write(home / "machines" / "web" / "tls")
    key = home / "machines" / "web" / "id"
    key.write_bytes(b"PRIVATE KEY OF WEB\n")
    record = NodeRecord(
        name="web",
        driver="openstack",
        provider_id="srv-1",
        addresses=["10.9.8.7"],
        data={
            "server_id": "srv-1",
            "private_key": str(key),
            "connect": {
                "openstack_auth_url": "http://127.0.0.1:5000/v3",
                "openstack_username": "demo",
            },
            "ssh_user": "debian",
        },
    )
    endpoint = Endpoint(host="10.9.8.7", ssh_user="debian", ssh_key=str(key), tls_dir=str(tls_dir))
    bundle = Bundle.build(
        "machine",
        "web",
        Access.OWNER,
        [SharedNode("web", record, endpoint)],
        tls,
        options={"openstack_auth_url": "http://127.0.0.1:5000/v3"},
        secrets={"openstack_password": "s3cret"},
    )
    return bundle, home


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_owner_bundle_round_trip_between_two_directories(
    exporter, tmp_path: Path, machine_tls
) -> None:
    bundle, _ = exporter
    data = bundle.seal(passphrase=PASS)
    assert b"s3cret" not in data and machine_tls.key_pem not in data  # encrypted
    assert machine_tls.ca_key_pem not in bundle.to_json()  # never the CA's key

    opened = Bundle.open(data, "web.bundle", passphrase=PASS)
    assert opened.access is Access.OWNER and opened.secrets == {"openstack_password": "s3cret"}
    target = tmp_path / "computer-b" / "machines" / "web"
    (node,) = opened.install(target)
    assert node.record.provider_id == "srv-1"
    assert node.record.data["connect"]["openstack_username"] == "demo"
    assert node.endpoint.ssh_key == str(target / "keys" / "web")
    assert node.record.data["private_key"] == node.endpoint.ssh_key  # repointed at the copy
    assert Path(node.endpoint.ssh_key).read_bytes() == b"PRIVATE KEY OF WEB\n"
    assert stat.S_IMODE(os.stat(node.endpoint.ssh_key).st_mode) == 0o600
    assert ClientTLS.from_dir(Path(node.endpoint.tls_dir or "")) == bundle.tls
    assert node.record.data["imported"]["rm"] == "delete"


def test_use_only_bundle_carries_client_material_and_nothing_else(exporter, tmp_path: Path) -> None:
    owner, _ = exporter
    use = Bundle.build("machine", "web", Access.USE, owner.nodes, owner.tls, secrets={"x": "y"})
    raw = use.to_json()
    for leaked in (b"s3cret", b"PRIVATE KEY OF WEB", b"srv-1", b"openstack_auth_url", b"demo"):
        assert leaked not in raw
    opened = Bundle.open(use.seal(passphrase=PASS), "web.bundle", passphrase=PASS)
    (node,) = opened.install(tmp_path / "b")
    assert node.record.driver == "ssh" and node.record.data["read_only"] is True
    assert node.record.data["imported"]["rm"] == "forget"
    assert node.endpoint.ssh_key is None and node.endpoint.host == "10.9.8.7"
    assert files_under(tmp_path / "b") == ["tls", "tls/ca.pem", "tls/cert.pem", "tls/key.pem"]


def test_sealed_for_an_ssh_ed25519_key(exporter, tmp_path: Path) -> None:
    bundle, _ = exporter
    for who in ("alice", "bob"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / who)], check=True
        )
    alice_pub = recipient_key((tmp_path / "alice.pub").read_text())
    data = bundle.seal(recipient=alice_pub)
    opened = Bundle.open(data, "f", identity=identity_key((tmp_path / "alice").read_bytes()))
    assert opened == bundle
    with pytest.raises(UsageError, match=r"sealed for another key \(SHA256:") as err:
        Bundle.open(data, "f", identity=identity_key((tmp_path / "bob").read_bytes()))
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="give its private key"):
        Bundle.open(data, "f", passphrase=PASS)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "rsa")],
        check=True,
    )
    with pytest.raises(UsageError, match="only ssh-ed25519 keys can"):
        recipient_key((tmp_path / "rsa.pub").read_text())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d[: len(d) - 40], r"truncated: \d+ of \d+ bytes"),
        (lambda d: d[:20], "truncated: its header is cut short"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "wrong passphrase, or the file was changed"),
        (
            lambda d: d.replace(b'"name": "web"', b'"name": "wex"'),
            "wrong passphrase, or the file was changed",
        ),
        (lambda d: b"PK\x03\x04" + d[4:], "is not a flotte bundle"),
        (lambda d: d.replace(b'"version": 1', b'"version": 7'), "bundle of version 7"),
    ],
)
def test_a_damaged_bundle_is_one_line_and_nothing_is_written(
    exporter, tmp_path: Path, damage, message
) -> None:
    bundle, _ = exporter
    data = damage(bundle.seal(passphrase=PASS))
    with pytest.raises(UsageError, match=message) as err:
        Bundle.open(data, "web.bundle", passphrase=PASS)
    assert "\n" not in str(err.value)


def test_wrong_passphrase_and_short_passphrases(exporter) -> None:
    bundle, _ = exporter
    data = bundle.seal(passphrase=PASS)
    with pytest.raises(UsageError, match=r"cannot open web\.bundle: wrong passphrase"):
        Bundle.open(data, "web.bundle", passphrase=PASS + "!")
    with pytest.raises(UsageError, match="sealed with a passphrase: give it"):
        Bundle.open(data, "web.bundle")
    with pytest.raises(UsageError, match="too short"):
        bundle.seal(passphrase="short")
    assert sealed.parse(data, "f").label == {"kind": "machine", "name": "web", "access": "owner"}


def test_a_ca_key_never_goes_into_a_bundle(exporter, machine_tls) -> None:
    bundle, _ = exporter
    as_ca = ClientTLS(machine_tls.ca_pem, machine_tls.ca_pem, machine_tls.ca_key_pem)
    with pytest.raises(UsageError, match="CA's private key"):
        Bundle.build("machine", "web", Access.USE, bundle.nodes, as_ca)
