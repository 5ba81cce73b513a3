"""PKI, engine configuration, state store and locks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from flotte.errors import AlreadyExists, Busy, NotFound, UsageError
from flotte.models import EngineOptions, check_name
from flotte.pki import CertificateAuthority, cert_sans
from flotte.provision import engine_config
from flotte.specs import machine_spec
from flotte.state.lock import locked
from flotte.state.node_rows import set_node
from flotte.state.store import Store


def test_ca_signs_server_certs_for_their_addresses(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    server = ca.server_cert("node-1", ["10.0.0.5", "node-1.lab"])
    assert {"10.0.0.5", "node-1.lab", "127.0.0.1", "localhost"} <= cert_sans(server.cert_pem)
    cert = x509.load_pem_x509_certificate(server.cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca.ca_path.read_bytes())
    assert cert.issuer == ca_cert.subject
    for secret in (ca.ca_key_path, ca.client.key):
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert not (ca.client.directory / "ca-key.pem").exists()  # DOCKER_CERT_PATH has no CA key
    again = CertificateAuthority(tmp_path / "certs").ensure()
    assert again.ca_path.read_bytes() == ca.ca_path.read_bytes()  # loaded, not remade


def test_rsa_keys_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTTE_KEY_TYPE", "rsa")
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    assert b"RSA PRIVATE KEY" in ca.client.key.read_bytes()


def test_engine_config_renders_tls_and_flags() -> None:
    engine = EngineOptions(
        opts=("log-level=debug", "experimental"),
        labels=("site=lyon",),
        insecure_registries=("reg:5000",),
        registry_mirrors=("https://mirror.lab",),
        env=("HTTP_PROXY=http://proxy:3128",),
        storage_driver="overlay2",
    )
    conf = engine_config.daemon_config(engine)
    assert conf["tlsverify"] is True and "tcp://0.0.0.0:2376" in conf["hosts"]  # type: ignore[operator]
    assert conf["labels"] == ["site=lyon"] and conf["insecure-registries"] == ["reg:5000"]
    assert conf["storage-driver"] == "overlay2"
    assert engine_config.dockerd_flags(engine) == ["--log-level=debug", "--experimental"]
    assert engine_config.environment(engine) == {"HTTP_PROXY": "http://proxy:3128"}
    assert "unix:///var/run/docker.sock" not in json.dumps(
        engine_config.daemon_config(engine, listen_unix=False)
    )
    for bad in (
        EngineOptions(labels=("nolabel",)),
        EngineOptions(opts=("--x",)),
        EngineOptions(env=("=v",)),
    ):
        with pytest.raises(UsageError):
            engine_config.validate(bad)


@pytest.mark.parametrize("name", ["a", "lab-1", "x" * 40])
def test_good_names(name: str) -> None:
    assert check_name("machine", name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "x" * 41, "a.b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(UsageError, match="invalid machine name"):
        check_name("machine", name)


def test_store_migrates_and_keeps_an_installation_id(database_url: str) -> None:
    store = Store(database_url)
    first = store.installation
    spec = machine_spec("m1", "local", {}, EngineOptions())
    store.add_machine(spec, "ready")
    with pytest.raises(AlreadyExists):
        store.add_machine(spec, "ready")
    store.now(set_node, "m1", status="failed")
    store.close()
    again = Store(database_url)
    assert again.installation == first
    assert again.node("m1").status == "failed"
    assert again.machine_spec("m1") == spec
    with pytest.raises(NotFound):
        again.node("ghost")
    journal = again.journal("machine:m1", "create")
    journal.write("create", "intent")
    journal.write("create", "failed", "boom")
    assert [(e.step, e.phase) for e in again.journal_entries("machine:m1")] == [
        ("create", "intent"),
        ("create", "failed"),
    ]


def test_lock_says_busy(tmp_path: Path) -> None:
    with (
        locked(tmp_path, "cluster", "x"),
        pytest.raises(Busy, match="cluster 'x' is busy"),
        locked(tmp_path, "cluster", "x", wait=0.2),
    ):
        pass
    with locked(tmp_path, "cluster", "x"):
        pass  # released when the holder left


def test_cluster_labels_reads_only_the_labelled(database_url: str) -> None:
    """What a health watch asks every few seconds: the clusters carrying a label, found
    by the database (spec text), not by parsing every cluster's spec."""
    from flotte.specs import ClusterSpec, NodeGroupSpec

    store = Store(database_url)
    group = (NodeGroupSpec(name="default-master", role="master", node_count=1),)
    for name, labels in (
        ("a", {"auto_healing_enabled": "true"}),
        ("b", {"auto_healing_enabled": "false", "x": "1"}),
        ("c", {"other": "auto_healing_enabled"}),  # the word as a value is not the label
        ("d", {}),
    ):
        spec = ClusterSpec(name=name, driver="fake", labels=labels, nodegroups=group)
        store.add_cluster(spec, "CREATE_COMPLETE")
    assert store.cluster_labels("auto_healing_enabled") == {"a": "true", "b": "false"}
    assert store.cluster_labels("nothing") == {}
    store.close()
