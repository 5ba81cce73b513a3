"""Engine flags that reach a shell, a systemd unit or a certificate: refused in one line.

Each refusal is also shown to be needed: the rendered files are run the way nodes run
them (``sh`` sources dockerd.env and word-splits dockerd.flags), and what slipped
through before is seen to execute or to add a directive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flotte.errors import UsageError
from flotte.models import EngineOptions
from flotte.pki import CertificateAuthority
from flotte.provision import dockerd_service as svc
from flotte.provision import engine_config

FLOTTE = str(Path(sys.executable).with_name("flotte"))


@pytest.mark.parametrize(
    ("engine", "words"),
    [
        (EngineOptions(env=("A B=1",)), ["--engine-env", "variable name"]),
        (EngineOptions(env=("1X=1",)), ["variable name"]),
        (EngineOptions(env=("X;touch /tmp/p=1",)), ["variable name"]),
        (EngineOptions(env=("X=a\nEVIL=1",)), ["control character"]),
        (EngineOptions(opts=("log-level=debug\nExecStartPre=/bin/sh",)), ["may only hold"]),
        (EngineOptions(opts=("label=a b",)), ["may only hold"]),
        (EngineOptions(opts=("label=$(id)",)), ["may only hold"]),
        (EngineOptions(opts=("label=*",)), ["may only hold"]),
        (EngineOptions(opts=("Log-Level=debug",)), ["not a dockerd option name"]),
        (EngineOptions(opts=("tlsverify=false",)), ["who may use the engine", "--insecure-i-know"]),
        (EngineOptions(opts=("tls=false",)), ["who may use the engine"]),
        (EngineOptions(opts=("tlscacert=/tmp/mine.pem",)), ["who may use the engine"]),
        (EngineOptions(opts=("host=tcp://0.0.0.0:2375",)), ["who may use the engine"]),
        (EngineOptions(opts=("config-file=/tmp/x.json",)), ["who may use the engine"]),
        (EngineOptions(labels=("a=b\nc",)), ["control character"]),
        (EngineOptions(insecure_registries=("reg 1",)), ["without blanks"]),
        (EngineOptions(storage_driver="overlay2 --tls=false"), ["storage driver name"]),
        (EngineOptions(tls_sans=("node 1",)), ["--tls-san", "neither a DNS name nor an IP"]),
        (EngineOptions(tls_sans=("a/b",)), ["neither a DNS name nor an IP"]),
    ],
)
def test_refused_in_one_line(engine: EngineOptions, words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        engine_config.validate(engine)
    line = str(info.value)
    assert "\n" not in line.replace(repr("\n")[1:-1], "")
    for word in words:
        assert word in line


def test_tls_overrides_need_the_escape() -> None:
    engine = EngineOptions(opts=("tlsverify=false",))
    engine_config.validate(engine, allow_insecure=True)  # the user said so
    with pytest.raises(UsageError, match="may only hold"):  # still no smuggling
        engine_config.validate(EngineOptions(opts=("tlsverify=false x",)), allow_insecure=True)


def test_ordinary_flags_pass() -> None:
    engine_config.validate(
        EngineOptions(
            opts=("log-level=debug", "default-ulimit=nofile=1024:2048", "experimental"),
            env=("HTTP_PROXY=http://proxy:3128", "NO_PROXY=localhost,.lab", "Q=it's $HOME"),
            labels=("site=lyon",),
            insecure_registries=("reg.lab:5000",),
            registry_mirrors=("https://mirror.lab",),
            storage_driver="overlay2",
            tls_sans=("box.lab", "10.0.0.9", "*.apps.lab"),
        )
    )


def _render(engine: EngineOptions, tmp_path: Path) -> Path:
    ca = CertificateAuthority(tmp_path / "certs").ensure()
    for f in engine_config.files(engine, ca.server_cert("n", [])):
        target = tmp_path / "node" / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.content)
    return tmp_path / "node" / engine_config.TLS_DIR.lstrip("/")


def test_env_values_reach_dockerd_as_given_and_run_nothing(tmp_path: Path) -> None:
    value = 'a\'b "c" $(touch pwned) `touch pwned2` ; touch pwned3'
    conf = _render(EngineOptions(env=(f"V={value}",)), tmp_path)
    out = subprocess.run(
        ["sh", "-c", f'set -a; . "{conf}/dockerd.env"; set +a; printf %s "$V"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == value
    assert not list(tmp_path.glob("pwned*"))


def test_flags_are_whole_words_for_the_local_nodes_shell(tmp_path: Path) -> None:
    conf = _render(EngineOptions(opts=("log-opt=max-size=10m", "dns-search=lab")), tmp_path)
    out = subprocess.run(
        ["sh", "-c", f'for w in $(cat "{conf}/dockerd.flags"); do echo "[$w]"; done'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["[--log-opt=max-size=10m]", "[--dns-search=lab]"]


def test_the_systemd_dropin_gets_no_extra_directive() -> None:
    flags = engine_config.dockerd_flags(EngineOptions(opts=("log-level=debug",)))
    dropin = svc.systemd_dropin("/usr/bin/dockerd -H fd://", flags, "m1")
    assert [ln for ln in dropin.splitlines() if ln.startswith("ExecStart")] == [
        "ExecStart=",
        "ExecStart=/usr/bin/dockerd -H fd:// --log-level=debug",
    ]
    with pytest.raises(UsageError):
        engine_config.dockerd_flags(EngineOptions(opts=("x=1\nExecStartPre=/bin/sh",)))


def test_the_cli_refuses_before_making_anything(tmp_path: Path) -> None:
    env = {**os.environ, "FLOTTE_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [FLOTTE, "machine", "create", "-d", "local", "m1", "--engine-opt", "tlsverify=false"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "who may use the engine" in proc.stderr
    listing = subprocess.run(
        [FLOTTE, "machine", "ls", "-q"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listing.stdout.strip() == ""
