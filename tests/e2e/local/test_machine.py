"""A machine on the local engine: TLS engine, Docker context, lifecycle, nothing left."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import docker
import pytest
from cryptography import x509

from fixtures.local import Flotte, labelled
from flotte.drivers.local.resources import SHARED_KEY
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def installation(flotte: Flotte) -> str:
    import sqlite3

    with sqlite3.connect(flotte.home / "flotte.db") as conn:
        return str(conn.execute("SELECT value FROM meta WHERE key='installation'").fetchone()[0])


def docker_cli(flotte: Flotte, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=flotte.env, timeout=60
    )


def server_cert(host: str, port: int = 2376) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as sock, ctx.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_machine_lifecycle(
    flotte: Flotte, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    out = flotte(
        "machine",
        "create",
        "-d",
        "local",
        "box",
        "--engine-label",
        "lab=ipHC",
        "--engine-insecure-registry",
        "reg.local:5000",
        "--engine-env",
        "FOO=bar",
        "--tls-san",
        "box.example.org",
    )
    assert "flotte machine env box" in out.stdout

    info = docker_cli(flotte, "--context", "flotte-box", "info", "--format", "{{json .}}")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert "lab=ipHC" in data["Labels"]
    assert "reg.local:5000" in json.dumps(data["RegistryConfig"])

    ip = flotte("machine", "ip", "box").stdout.strip()
    assert flotte("machine", "url", "box").stdout.strip() == f"tcp://{ip}:2376"
    assert flotte("machine", "status", "box").stdout.strip() == "Running"
    cert = server_cert(ip)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "box.example.org" in sans.get_values_for_type(x509.DNSName)

    # A client without flotte's client certificate is refused by the engine.
    ctx = ssl.create_default_context(cafile=str(flotte.home / "secrets" / "certs" / "ca.pem"))
    ctx.check_hostname = False
    with (
        socket.create_connection((ip, 2376), timeout=5) as sock,
        pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)),
        ctx.wrap_socket(sock) as tls,
    ):
        tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        if not tls.recv(100):
            raise ConnectionResetError("closed without an answer")

    # Secrets are private; env points the docker CLI at the engine.
    for key in (
        "secrets/certs/key.pem",
        "secrets/ca/ca-key.pem",
        "secrets/machines/box/id_ed25519",
    ):
        assert stat.S_IMODE(os.stat(flotte.home / key).st_mode) == 0o600, key
    env = flotte("machine", "env", "box", "--shell", "bash").stdout
    assert f'export DOCKER_HOST="tcp://{ip}:2376"' in env
    assert 'export DOCKER_TLS_VERIFY="1"' in env
    assert "set -gx DOCKER_HOST" in flotte("machine", "env", "box", "--shell", "fish").stdout
    assert "unset DOCKER_HOST" in flotte("machine", "env", "-u", "box").stdout
    cfg = flotte("machine", "config", "box").stdout.strip()
    assert docker_cli(flotte, *cfg.replace('"', "").split(), "version").returncode == 0

    # recorded when its engine was provisioned (ls has not asked it yet)
    inspected = json.loads(flotte("machine", "inspect", "box").stdout)
    assert inspected["engine_version"] == data["ServerVersion"]
    ls = json.loads(flotte("machine", "ls", "-f", "json").stdout)
    assert [(m["name"], m["state"], m["driver"]) for m in ls] == [("box", "Running", "local")]
    assert ls[0]["docker"] == data["ServerVersion"]
    assert flotte("machine", "ls", "-q", "--filter", "driver=ssh").stdout == ""

    ssh = flotte("machine", "ssh", "box", "--", "cat", "/etc/hostname")
    assert ssh.stdout.strip() == "box"
    assert ssh.stderr == "", ssh.stderr  # no "Permanently added ... known hosts" noise

    flotte("machine", "stop", "box")
    assert flotte("machine", "status", "box").stdout.strip() == "Stopped"
    flotte("machine", "start", "box")
    assert docker_cli(flotte, "--context", "flotte-box", "info").returncode == 0
    flotte("machine", "restart", "box")
    assert docker_cli(flotte, "--context", "flotte-box", "info").returncode == 0

    before = server_cert(ip).serial_number
    flotte("machine", "regenerate-certs", "-f", "box")
    assert server_cert(ip).serial_number != before
    assert docker_cli(flotte, "--context", "flotte-box", "info").returncode == 0

    flotte("machine", "kill", "box")
    assert flotte("machine", "status", "box").stdout.strip() == "Stopped"

    flotte("machine", "rm", "-y", "box")
    assert flotte.owned(docker_engine, machine="box") == []
    assert labelled(docker_engine, {SHARED_KEY: "machines", OWNER_KEY: installation(flotte)}) == []
    assert "flotte-box" not in docker_cli(flotte, "context", "ls", "--format", "{{.Name}}").stdout
    assert json.loads(flotte("machine", "ls", "-f", "json").stdout) == []


def test_commands_after_eval_of_machine_env(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    """The README's steps: after `eval $(flotte machine env box)` the DOCKER_* variables
    point at box's engine; flotte's own commands still find the local machines on this
    host's engine (they showed Error, and rm failed)."""
    flotte("machine", "create", "-d", "local", "box")
    exported = flotte("machine", "env", "box", "--shell", "bash").stdout
    env = dict(
        line.removeprefix("export ").replace('"', "").split("=", 1)
        for line in exported.splitlines()
        if line.startswith("export ")
    )
    assert env["DOCKER_MACHINE_NAME"] == "box" and env["DOCKER_HOST"].startswith("tcp://")
    ls = json.loads(flotte("machine", "ls", "-f", "json", env=env).stdout)
    assert [(m["name"], m["state"], m["active"]) for m in ls] == [("box", "Running", "*")]
    assert flotte("machine", "status", "box", env=env).stdout.strip() == "Running"
    flotte("machine", "rm", "-y", "box", env=env)
    assert flotte.owned(docker_engine, machine="box") == []
    # docker-machine's way out, with or without the (now removed) machine's name
    for args in (("-u",), ("-u", "box")):
        unset = flotte("machine", "env", *args, "--shell", "bash", env=env).stdout
        assert {f"unset {key}" for key in env} <= set(unset.splitlines())
    assert json.loads(flotte("machine", "ls", "-f", "json").stdout) == []


def test_two_machines_share_a_network_until_the_last_goes(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    flotte("machine", "create", "one")
    flotte("machine", "create", "two")
    assert set(flotte("machine", "ls", "-q").stdout.split()) == {"one", "two"}
    flotte("machine", "rm", "-y", "one")
    assert docker_cli(flotte, "--context", "flotte-two", "info").returncode == 0
    flotte("machine", "rm", "-y", "two")
    assert labelled(docker_engine, {SHARED_KEY: "machines", OWNER_KEY: installation(flotte)}) == []
