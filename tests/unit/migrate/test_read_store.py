"""Reading docker-machine stores written in docker-machine's own format (no engine needed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from fixtures.docker_machine import (
    base_driver,
    generic_driver,
    make_tls,
    write_machine,
)
from flotte.errors import UsageError
from flotte.migrate import default_store, read_store
from flotte.migrate.store import STORE_ENV

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"


def tree_digest(root: Path) -> dict[str, tuple[str, int, float]]:
    """Every file under ``root`` with its content hash, mode and mtime."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(root))] = (digest, st.st_mode, st.st_mtime)
    return out


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "machine"


def test_generic_machine_becomes_an_ssh_machine_with_its_own_tls(
    store: Path, tmp_path: Path
) -> None:
    tls = make_tls("10.1.2.3")
    write_machine(
        store,
        "Lab.Box1",
        "generic",
        generic_driver(store, "Lab.Box1", "10.1.2.3", SSHUser="deploy", SSHPort=2222),
        tls,
        ssh_key=KEY,
        engine={
            "Labels": ["rack=b12"],
            "ArbitraryFlags": ["log-driver=journald"],
            "Dns": ["9.9.9.9"],
        },
    )
    before = tree_digest(store)
    found = read_store(store)
    assert found.skipped == []
    (m,) = found.machines
    assert (m.name, m.source_name, m.driver, m.read_only) == ("lab-box1", "Lab.Box1", "ssh", False)
    assert m.url == "tcp://10.1.2.3:2376"
    assert m.engine.labels == ("rack=b12",)
    assert m.engine.opts == ("log-driver=journald", "dns=9.9.9.9")

    record, endpoint = m.install(tmp_path / "flotte" / "lab-box1")
    assert record.data["ssh_host"] == "10.1.2.3"
    assert (record.data["ssh_user"], record.data["ssh_port"]) == ("deploy", 2222)
    assert record.data["imported"]["rm"] == "forget"
    assert endpoint.tls_dir is not None and endpoint.ssh_key == record.data["ssh_key"]
    tls_dir = Path(endpoint.tls_dir)
    assert (tls_dir / "cert.pem").read_bytes() == tls.cert_pem
    assert (tls_dir / "ca.pem").read_bytes() == tls.ca_pem
    assert (tls_dir / "key.pem").read_bytes() == tls.key_pem
    assert stat.S_IMODE(os.stat(tls_dir / "key.pem").st_mode) == 0o600
    assert Path(endpoint.ssh_key or "").read_bytes() == KEY
    # never the CA's key, anywhere flotte wrote
    written = b"".join(p.read_bytes() for p in (tmp_path / "flotte").rglob("*") if p.is_file())
    assert tls.ca_key_pem not in written
    assert tree_digest(store) == before  # nothing written in the docker-machine directory


def test_cloud_machines_keep_their_server_and_instance_ids(store: Path, tmp_path: Path) -> None:
    tls = make_tls("192.0.2.7")
    write_machine(
        store,
        "os1",
        "openstack",
        base_driver(
            store, "os1", "192.0.2.7",
            SSHUser="debian", AuthUrl="http://127.0.0.1:5000/v3", Username="demo",
            Password="s3cret", TenantName="demo", DomainName="Default", Region="RegionOne",
            MachineId="5c1f4a3e-0000-4000-8000-000000000001", KeyPairName="os1-abc",
            PrivateKeyFile="", FlavorName="m1.small", ImageName="debian-12", ActiveTimeout=200,
        ),
        tls,
        ssh_key=KEY,
    )  # fmt: skip
    write_machine(
        store,
        "aws1",
        "amazonec2",
        base_driver(
            store, "aws1", "198.51.100.4",
            SSHUser="ubuntu", InstanceId="i-0123456789abcdef0", Region="eu-west-3",
            AccessKey="AKIDEXAMPLE", SecretKey="wJalrXUtnFEMI", KeyName="aws1",
            ExistingKey=False, PrivateIPAddress="172.31.0.9", Endpoint="127.0.0.1:5000",
            DisableSSL=True, SecurityGroupIds=["sg-1"],
        ),
        tls,
        ssh_key=KEY,
    )  # fmt: skip
    found = read_store(store)
    assert found.skipped == []
    by_name = {m.name: m for m in found.machines}

    os1 = by_name["os1"]
    assert os1.driver == "openstack" and os1.mapped.rm == "delete"
    record, endpoint = os1.install(tmp_path / "f" / "os1")
    assert record.provider_id == record.data["server_id"] == "5c1f4a3e-0000-4000-8000-000000000001"
    assert record.data["connect"]["openstack_auth_url"] == "http://127.0.0.1:5000/v3"
    assert record.data["keypair_owned"] is True
    assert os1.mapped.secrets == {"openstack_password": "s3cret"}
    assert "s3cret" not in json.dumps(record.data) + json.dumps(os1.mapped.options)
    assert endpoint.ssh_user == "debian" and record.data["private_key"] == endpoint.ssh_key

    aws1 = by_name["aws1"]
    record, endpoint = aws1.install(tmp_path / "f" / "aws1")
    assert record.provider_id == record.data["instance_id"] == "i-0123456789abcdef0"
    assert record.data["endpoint_url"] == "http://127.0.0.1:5000"
    assert record.data["region"] == "eu-west-3"
    assert record.addresses == ["198.51.100.4", "172.31.0.9"]
    assert aws1.mapped.secrets == {
        "ec2_access_key": "AKIDEXAMPLE",
        "ec2_secret_key": "wJalrXUtnFEMI",
    }
    assert "wJalrXUtnFEMI" not in json.dumps(record.data)
    assert record.data["key_path"] == endpoint.ssh_key


def test_local_hypervisors_and_unmanaged_clouds_are_use_only(store: Path) -> None:
    tls = make_tls("192.168.99.100")
    write_machine(
        store, "vbox", "virtualbox",
        base_driver(store, "vbox", "192.168.99.100", SSHUser="docker", CPU=1, Memory=1024),
        tls, ssh_key=KEY,
    )  # fmt: skip
    write_machine(
        store, "drop", "digitalocean",
        base_driver(store, "drop", "203.0.113.5", DropletID=1234),
        tls, ssh_key=KEY,
    )  # fmt: skip
    found = read_store(store)
    by_name = {m.name: m for m in found.machines}
    assert by_name["vbox"].read_only and "VirtualBox" in by_name["vbox"].note
    assert by_name["vbox"].mapped.rm == "forget"
    assert by_name["vbox"].mapped.endpoint.ssh_user == "docker"
    assert by_name["drop"].read_only and "DigitalOcean" in by_name["drop"].note


def test_a_moved_store_is_read_where_it_is_now(store: Path, tmp_path: Path) -> None:
    """config.json names the paths of the computer that wrote it; the copy here is read."""
    tls = make_tls("10.1.2.3")
    write_machine(store, "box", "generic", generic_driver(store, "box", "10.1.2.3"), tls)
    for name in ("ca.pem", "cert.pem", "key.pem"):  # only the store-wide copies remain
        (store / "machines" / "box" / name).unlink()
    moved = tmp_path / "elsewhere"
    store.rename(moved)
    (m,) = read_store(moved).machines
    assert m.tls.cert_pem == tls.cert_pem


def test_each_bad_machine_is_one_line_and_the_others_are_imported(
    store: Path, tmp_path: Path
) -> None:
    good = make_tls("10.0.0.1")
    write_machine(store, "good", "generic", generic_driver(store, "good", "10.0.0.1"), good)

    (store / "machines" / "notes").mkdir()  # not a machine directory
    broken = write_machine(
        store, "broken", "generic", generic_driver(store, "broken", "1.1.1.1"), good
    )
    (broken / "config.json").write_text('{"ConfigVersion": 3, "Driver": {')
    write_machine(store, "weird", "frobnicator", base_driver(store, "weird", "10.0.0.9"), good)
    nocert = write_machine(
        store, "nocert", "generic", generic_driver(store, "nocert", "10.0.0.2"), good
    )
    (nocert / "cert.pem").unlink()
    config = json.loads((nocert / "config.json").read_text())
    config["HostOptions"]["AuthOptions"]["ClientCertPath"] = "/nonexistent/cert.pem"
    (nocert / "config.json").write_text(json.dumps(config))

    old = make_tls("10.0.0.3", client_days=30, start=dt.datetime(2019, 1, 1, tzinfo=dt.UTC))
    other = tmp_path / "other-store"
    write_machine(other, "expired", "generic", generic_driver(other, "expired", "10.0.0.3"), old)
    (other / "machines" / "expired").rename(store / "machines" / "expired")
    noip = write_machine(store, "noip", "generic", generic_driver(store, "noip", ""), good)
    assert noip.is_dir()

    before = tree_digest(store)
    found = read_store(store)
    assert [m.name for m in found.machines] == ["good"]
    lines = {s.name: str(s) for s in found.skipped}
    assert set(lines) == {"notes", "broken", "weird", "nocert", "expired", "noip"}
    assert "no config.json" in lines["notes"]
    assert "not valid JSON" in lines["broken"]
    assert "'frobnicator' is unknown" in lines["weird"] and "generic" in lines["weird"]
    assert "no client certificate" in lines["nocert"]
    assert "client certificate expired on 2019-01-31" in lines["expired"]
    assert "no IP address" in lines["noip"]
    assert all("\n" not in line for line in lines.values())
    assert tree_digest(store) == before


def test_certificates_that_do_not_belong_together_are_refused(store: Path) -> None:
    a, b = make_tls("10.0.0.1"), make_tls("10.0.0.1")
    machine = write_machine(
        store, "mixed", "generic", generic_driver(store, "mixed", "10.0.0.1"), a
    )
    (machine / "key.pem").write_bytes(b.key_pem)
    other = write_machine(
        store, "foreign", "generic", generic_driver(store, "foreign", "10.0.0.1"), a
    )
    (other / "ca.pem").write_bytes(b.ca_pem)
    lines = {s.name: s.reason for s in read_store(store).skipped}
    assert lines["mixed"] == "key.pem is not the key of cert.pem"
    assert lines["foreign"] == "cert.pem was not signed by ca.pem"


def test_selected_names_and_missing_ones(store: Path) -> None:
    tls = make_tls("10.0.0.1")
    for name in ("a1", "b2"):
        write_machine(store, name, "generic", generic_driver(store, name, "10.0.0.1"), tls)
    found = read_store(store, ["b2", "zz"])
    assert [m.name for m in found.machines] == ["b2"]
    assert [str(s) for s in found.skipped] == [f"zz: no such machine in {store}"]


def test_not_a_store_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        read_store(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a docker-machine directory"):
        read_store(tmp_path / "plain")
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "dm"))
    assert default_store() == tmp_path / "dm"
    monkeypatch.delenv(STORE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store() == tmp_path / ".docker" / "machine"


def test_newer_config_versions_and_names_flotte_cannot_take(store: Path) -> None:
    tls = make_tls("10.0.0.1")
    write_machine(store, "future", "generic", generic_driver(store, "future", "10.0.0.1"), tls,
                  config_version=4)  # fmt: skip
    long = "x" * 50
    write_machine(store, long, "generic", generic_driver(store, long, "10.0.0.1"), tls)
    write_machine(store, "Twin", "generic", generic_driver(store, "Twin", "10.0.0.1"), tls)
    write_machine(store, "twin", "generic", generic_driver(store, "twin", "10.0.0.1"), tls)
    found = read_store(store)
    lines = {s.name: s.reason for s in found.skipped}
    assert "ConfigVersion 4" in lines["future"]
    assert "cannot become a flotte name" in lines[long]
    assert [m.name for m in found.machines] == ["twin"]
    assert "like 'Twin'" in lines["twin"]
