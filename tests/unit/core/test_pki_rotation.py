"""The CA: consistency checks on load, expiry warnings, SANs, and rotation by phases.

Trust is checked with real TLS handshakes on loopback (Python's ``ssl``, i.e. OpenSSL):
an "engine" serves with the files a node would have at each step of a rotation, and a
"client" connects with the files flotte's client would have at that moment.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509

from flotte import certificates, contexts
from flotte.config import write_public
from flotte.errors import UsageError
from flotte.pki import (
    IDLE,
    STAGED,
    SWITCHED,
    CertificateAuthority,
    CertificateError,
    ServerCert,
    cert_sans,
    check_san,
)

FLOTTE = str(Path(sys.executable).with_name("flotte"))


def handshake(server: ServerCert, tmp: Path, client_dir: Path) -> bool:
    """True when a client with ``client_dir``'s files and an engine with ``server`` agree."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name, data in (("s.pem", server.cert_pem), ("s-key.pem", server.key_pem)):
        (tmp / name).write_bytes(data)
    (tmp / "s-ca.pem").write_bytes(server.ca_pem)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tmp / "s.pem", tmp / "s-key.pem")
    sctx.load_verify_locations(tmp / "s-ca.pem")
    sctx.verify_mode = ssl.CERT_REQUIRED  # dockerd's tlsverify: client certificates checked
    cctx = ssl.create_default_context(cafile=str(client_dir / "ca.pem"))
    cctx.load_cert_chain(client_dir / "cert.pem", client_dir / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, bool] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with sctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
                result["server"] = True
        except (ssl.SSLError, OSError):
            result["server"] = False

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            cctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            ok = tls.recv(2) == b"ok"
    except (ssl.SSLError, OSError):
        ok = False
    thread.join(5)
    listener.close()
    return ok and result.get("server", False)


def snapshot(ca: CertificateAuthority, where: Path) -> Path:
    """The client's files as they are now (what a docker context holds)."""
    shutil.copytree(ca.client.directory, where)
    return where


def test_rotation_never_cuts_an_engine_off(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "secrets" / "certs").ensure()
    old_engine = ca.server_cert("node", ["127.0.0.1"])
    old_client = snapshot(ca, tmp_path / "client-0")
    old_ca_key = ca.ca_key_path.read_bytes()
    assert handshake(old_engine, tmp_path / "h0", ca.client.directory)

    ca.begin_rotation()
    assert ca.phase() == STAGED
    assert len(ca.trusted()) == 2
    # an engine not re-signed yet still works with the current client, and vice versa
    assert handshake(old_engine, tmp_path / "h1", ca.client.directory)
    staged_engine = ca.server_cert("node", ["127.0.0.1"])
    assert (
        b"".join(
            c.public_bytes(_pem()) for c in x509.load_pem_x509_certificates(staged_engine.ca_pem)
        )
        == ca.ca_path.read_bytes()
    )
    assert handshake(staged_engine, tmp_path / "h2", ca.client.directory)
    # an engine not re-signed yet still takes a client that has not heard of the rotation
    assert handshake(old_engine, tmp_path / "h3", old_client)

    ca.switch_rotation()
    assert ca.phase() == SWITCHED
    assert handshake(staged_engine, tmp_path / "h4", ca.client.directory)
    final_engine = ca.server_cert("node", ["127.0.0.1"])
    assert len(x509.load_pem_x509_certificates(final_engine.ca_pem)) == 1
    assert handshake(final_engine, tmp_path / "h5", ca.client.directory)
    # the old client certificate is refused by an engine that trusts the new CA only
    assert not handshake(final_engine, tmp_path / "h6", old_client)

    ca.finish_rotation()
    assert ca.phase() == IDLE
    assert ca.ca_key_path.read_bytes() != old_ca_key
    assert len(ca.trusted()) == 1
    assert not (ca.ca_key_path.parent / "rotation").exists()
    assert handshake(final_engine, tmp_path / "h7", ca.client.directory)
    again = CertificateAuthority(ca.directory).ensure()  # a later command loads it cleanly
    assert again.signed_by_current(final_engine.cert_pem)
    assert not again.signed_by_current(old_engine.cert_pem)


def _pem() -> object:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def test_an_interrupted_begin_is_cleaned_and_steps_resume(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "secrets" / "certs").ensure()
    stale = ca.ca_key_path.parent / "rotation.new-dead"
    stale.mkdir()
    (stale / "ca-key.pem").write_text("half made by a killed command")
    ca.begin_rotation()
    assert not stale.exists()
    first_new = (ca.ca_key_path.parent / "rotation" / "ca.pem").read_bytes()
    ca.begin_rotation()  # a second run resumes: the same new CA
    assert (ca.ca_key_path.parent / "rotation" / "ca.pem").read_bytes() == first_new
    # another process (a later command) sees the phase from disk
    other = CertificateAuthority(ca.directory).ensure()
    assert other.phase() == STAGED
    with pytest.raises(CertificateError, match="no rotation to finish"):
        other.finish_rotation()
    other.switch_rotation()
    CertificateAuthority(ca.directory).ensure().finish_rotation()
    assert CertificateAuthority(ca.directory).ensure().phase() == IDLE


def _mixed_home(tmp_path: Path) -> Path:
    """What the first-use race left behind: the CA key of one process, the cert of another."""
    home = tmp_path / "home"
    one = CertificateAuthority(home / "secrets" / "certs").ensure()
    two = CertificateAuthority(tmp_path / "other" / "secrets" / "certs").ensure()
    write_public(one.ca_path, two.ca_path.read_bytes())
    return home


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOTTE_HOME": str(home), "DOCKER_CONFIG": str(home / "docker")}
    return subprocess.run([FLOTTE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_ca_key_that_does_not_match_says_how_to_repair(tmp_path: Path) -> None:
    home = _mixed_home(tmp_path)
    with pytest.raises(CertificateError, match="flotte ca rotate"):
        CertificateAuthority(home / "secrets" / "certs").ensure()
    proc = run(home, "machine", "ls")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "does not belong" in proc.stderr
    assert "flotte ca rotate" in proc.stderr
    repaired = run(home, "ca", "rotate", "-y")
    assert repaired.returncode == 0, repaired.stderr
    assert run(home, "machine", "ls").returncode == 0


def test_a_client_certificate_from_another_ca_says_how_to_repair(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ca = CertificateAuthority(home / "secrets" / "certs").ensure()
    other = CertificateAuthority(tmp_path / "other" / "certs").ensure()
    write_public(ca.client.cert, other.client.cert.read_bytes())
    proc = run(home, "machine", "ls")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "flotte ca renew-client" in proc.stderr and proc.stderr.count("\n") == 1
    assert run(home, "ca", "renew-client").returncode == 0
    assert run(home, "machine", "ls").returncode == 0


def test_a_lost_ca_certificate_is_remade_from_its_key(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    engine = ca.server_cert("node", ["127.0.0.1"])
    ca.ca_path.unlink()  # a run cut between writing the key and the certificate
    again = CertificateAuthority(tmp_path / "certs").ensure()
    assert handshake(engine, tmp_path / "h", again.client.directory)


def test_expiry_warnings_within_thirty_days(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    assert ca.expiry_warnings() == []
    expires = ca.trusted()[0].not_valid_after_utc
    soon = ca.expiry_warnings(now=expires - dt.timedelta(days=12, hours=1))
    assert "the flotte CA expires in 12 days" in soon
    assert "the client certificate expires in 12 days" in soon
    late = ca.expiry_warnings(now=expires + dt.timedelta(days=1))
    assert any("expired on" in w for w in late)
    # leaves never outlive the CA that signed them
    leaf = x509.load_pem_x509_certificate(ca.server_cert("n", []).cert_pem)
    assert leaf.not_valid_after_utc <= expires


def test_engine_expiry_is_read_from_the_engine(tmp_path: Path) -> None:
    import asyncio

    from flotte.models import Endpoint

    ca = CertificateAuthority(tmp_path / "certs").ensure()
    engine = ca.server_cert("node", ["127.0.0.1"])
    for name, data in (("s.pem", engine.cert_pem), ("k.pem", engine.key_pem)):
        (tmp_path / name).write_bytes(data)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(tmp_path / "s.pem", tmp_path / "k.pem")

    async def check() -> str | None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await certificates.engine_expiry(Endpoint("127.0.0.1", docker_port=port), ca)

    assert asyncio.run(check()) is None  # 1080 days left: nothing to say


@pytest.mark.parametrize("good", ["node1.lab", "*.lab.example.org", "10.0.0.5", "::1", "a-b"])
def test_good_sans(good: str) -> None:
    assert check_san(good)


@pytest.mark.parametrize(
    "bad", ["", "a b", "-x.lab", "x..lab", "é.lab", "a/b", "x" * 64 + ".lab", "a\nb", "*"]
)
def test_bad_sans(bad: str) -> None:
    with pytest.raises(UsageError, match="neither a DNS name nor an IP"):
        check_san(bad)


def test_names_gathered_from_hosts_are_filtered(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    server = ca.server_cert("node", ["10.0.0.5", "bad_host", "héhé", "ok.lab"])
    assert {"10.0.0.5", "ok.lab", "node"} <= cert_sans(server.cert_pem)
    assert not {"bad_host", "héhé"} & cert_sans(server.cert_pem)


def test_a_renewed_client_certificate_replaces_the_old_one_in_contexts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    contexts.write("m1", "tcp://10.0.0.5:2376", ca)
    foreign = CertificateAuthority(tmp_path / "imported").ensure()
    contexts.write("imported", "tcp://10.0.0.6:2376", foreign)
    old = ca.client.cert.read_bytes()
    assert certificates.renew_client(ca) == 1
    tls = tmp_path / "docker" / "contexts" / "tls"
    certs = {p.parent.parent.name: p.read_bytes() for p in tls.glob("*/docker/cert.pem")}
    assert old not in certs.values()
    assert ca.client.cert.read_bytes() in certs.values()
    assert foreign.client.cert.read_bytes() in certs.values()  # not ours: left alone
    meta = json.loads(
        next((tmp_path / "docker" / "contexts" / "meta").glob("*/meta.json")).read_text()
    )
    assert meta["Name"].startswith("flotte-")


class _Row:
    def __init__(self, name: str) -> None:
        self.name = name


class _Machines:
    """The one thing a rotation asks of the store: the recorded names."""

    def __init__(self, names: list[str]) -> None:
        self.rows = [_Row(n) for n in names]

    def all(self) -> list[_Row]:
        return self.rows


def test_a_paused_rotation_resumes_and_every_engine_keeps_answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from flotte.errors import Unreachable

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    engines = {n: ca.server_cert(n, ["127.0.0.1"]) for n in ("a", "b", "c")}
    down = {"b"}
    checks = []

    async def resign(name: str) -> bool:
        if name in down:
            raise Unreachable(f"{name}: no route to host")
        engines[name] = ca.server_cert(name, ["127.0.0.1"])
        # after each engine changes, every engine still takes the client as it is now
        checks.extend(
            handshake(e, tmp_path / f"h{len(checks)}-{n}", ca.client.directory)
            for n, e in engines.items()
        )
        return True

    first = asyncio.run(certificates.rotate_ca(_Machines(list(engines)), ca, resign))
    assert first.phase == STAGED and set(first.failed) == {"b"} and not first.finished
    down.clear()
    second = asyncio.run(certificates.rotate_ca(_Machines(list(engines)), ca, resign))
    assert second.finished and second.resigned == {"a", "b", "c"}
    assert all(checks) and len(checks) > 9
    assert all(ca.signed_by_current(e.cert_pem) for e in engines.values())
