"""What dockerd on a node is told: daemon.json, extra flags and environment.

Pure functions shared by every driver: the local driver copies the result into a
container before it starts, the SSH provisioner uploads it to a host. The daemon
config lists the unix socket only when ``listen_unix`` is set: Debian's and Fedora's systemd
units pass ``-H fd://`` and dockerd refuses a host given twice.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from flotte.errors import UsageError
from flotte.models import EngineOptions
from flotte.pki import ServerCert, check_san

TLS_DIR = "/etc/docker/flotte"
DOCKER_TLS_PORT = 2376


@dataclass(frozen=True)
class EngineFile:
    path: str
    content: bytes
    mode: int


# The flag a user passes to accept an engine whose TLS settings they change themselves
# (the CLI defines it; ``validate(..., allow_insecure=True)`` is what it turns on).
INSECURE_FLAG = "--insecure-i-know"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPT_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Engine options end up in a shell word list (local nodes: $(cat dockerd.flags)), in
# /etc/default/docker and in a systemd unit: no blanks, quotes, $, `, \, globs, ;|&<>()
_OPT_VALUE = re.compile(r"^[A-Za-z0-9._:/=,@+%~-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STORAGE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# dockerd options that decide who may talk to the engine, and how
_GUARDED = ("tls", "host", "hosts", "config-file")


def _pairs(values: tuple[str, ...], flag: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {value!r} is not KEY=VALUE")
        out.append((key, val))
    return out


def _no_control(values: tuple[str, ...], flag: str) -> None:
    for value in values:
        if _CONTROL.search(value):
            raise UsageError(
                f"{flag} {value!r} holds a control character (a newline, a tab...)",
                hint="each value must be one line of printable characters",
            )


def check_syntax(engine: EngineOptions) -> None:
    """Refuse values that could smuggle anything into a shell, a unit file or JSON."""
    for key, val in _pairs(engine.env, "--engine-env"):
        if not _ENV_NAME.match(key):
            raise UsageError(
                f"--engine-env {key!r}: a variable name is letters, digits and '_', "
                "not starting with a digit"
            )
        if _CONTROL.search(val):
            raise UsageError(
                f"--engine-env {key}: the value holds a control character (a newline, a tab...)",
                hint="the environment file has one variable per line",
            )
    _pairs(engine.labels, "--engine-label")
    for flag, values in (
        ("--engine-label", engine.labels),
        ("--engine-insecure-registry", engine.insecure_registries),
        ("--engine-registry-mirror", engine.registry_mirrors),
    ):
        _no_control(values, flag)
    for flag, values in (
        ("--engine-insecure-registry", engine.insecure_registries),
        ("--engine-registry-mirror", engine.registry_mirrors),
    ):
        for value in values:
            if not value or any(c.isspace() for c in value):
                raise UsageError(f"{flag} {value!r} must be one address without blanks")
    if engine.storage_driver is not None and not _STORAGE.match(engine.storage_driver):
        raise UsageError(
            f"--engine-storage-driver {engine.storage_driver!r} is not a storage driver name"
        )
    for opt in engine.opts:
        if not opt or opt.startswith("-"):
            raise UsageError(
                f"--engine-opt {opt!r}: give it without dashes, e.g. 'log-level=debug'"
            )
        key, _, value = opt.partition("=")
        if not _OPT_NAME.match(key):
            raise UsageError(
                f"--engine-opt {opt!r}: {key!r} is not a dockerd option name "
                "(lowercase letters, digits and '-')"
            )
        if not _OPT_VALUE.match(value):
            raise UsageError(
                f"--engine-opt {opt!r}: the value may only hold letters, digits and . _ : / "
                "= , @ + % ~ - (no blanks, quotes or shell characters)",
                hint="settings that need more go in the host's /etc/docker/daemon.json",
            )


def validate(engine: EngineOptions, *, allow_insecure: bool = False) -> None:
    """Reject malformed or unsafe engine flags before anything is created.

    ``allow_insecure`` (the CLI's ``--insecure-i-know``) lets ``--engine-opt`` change the
    engine's TLS and listening settings, which flotte otherwise owns: ``tlsverify=false``
    would let anyone who reaches port 2376 drive the engine without a certificate.
    """
    check_syntax(engine)
    for san in engine.tls_sans:
        check_san(san)
    if allow_insecure:
        return
    for opt in engine.opts:
        key = opt.partition("=")[0]
        if key.startswith(_GUARDED):
            raise UsageError(
                f"--engine-opt {opt!r} would change who may use the engine and how "
                "(flotte sets TLS with client certificates on port 2376 itself)",
                hint=f"leave it out, or pass {INSECURE_FLAG} if that is really what you want",
            )


def daemon_config(engine: EngineOptions, *, listen_unix: bool = True) -> dict[str, object]:
    """daemon.json for a TLS engine on port 2376 (and the local unix socket)."""
    hosts = [f"tcp://0.0.0.0:{DOCKER_TLS_PORT}"]
    if listen_unix:
        hosts.insert(0, "unix:///var/run/docker.sock")
    config: dict[str, object] = {
        "tls": True,
        "tlsverify": True,
        "tlscacert": f"{TLS_DIR}/ca.pem",
        "tlscert": f"{TLS_DIR}/server.pem",
        "tlskey": f"{TLS_DIR}/server-key.pem",
        "hosts": hosts,
    }
    if engine.labels:
        config["labels"] = list(engine.labels)
    if engine.insecure_registries:
        config["insecure-registries"] = list(engine.insecure_registries)
    if engine.registry_mirrors:
        config["registry-mirrors"] = list(engine.registry_mirrors)
    if engine.storage_driver:
        config["storage-driver"] = engine.storage_driver
    return config


def dockerd_flags(engine: EngineOptions) -> list[str]:
    """``--engine-opt`` values as dockerd command-line flags."""
    check_syntax(engine)  # whatever the caller checked: these become shell words
    flags = []
    for opt in engine.opts:
        key, sep, value = opt.partition("=")
        flags.append(f"--{key}={value}" if sep else f"--{key}")
    return flags


def environment(engine: EngineOptions) -> dict[str, str]:
    check_syntax(engine)  # the file is read by sh on local nodes and sysvinit hosts
    return dict(_pairs(engine.env, "--engine-env"))


def files(
    engine: EngineOptions, server: ServerCert, *, listen_unix: bool = True
) -> list[EngineFile]:
    """Every file a node needs for its engine, with the mode each must have."""
    env = "".join(f"{k}={shlex.quote(v)}\n" for k, v in environment(engine).items())
    return [
        EngineFile(f"{TLS_DIR}/ca.pem", server.ca_pem, 0o644),
        EngineFile(f"{TLS_DIR}/server.pem", server.cert_pem, 0o644),
        EngineFile(f"{TLS_DIR}/server-key.pem", server.key_pem, 0o600),
        EngineFile(
            f"{TLS_DIR}/daemon.json",
            json.dumps(daemon_config(engine, listen_unix=listen_unix), indent=2).encode(),
            0o644,
        ),
        EngineFile(f"{TLS_DIR}/dockerd.flags", " ".join(dockerd_flags(engine)).encode(), 0o644),
        EngineFile(f"{TLS_DIR}/dockerd.env", env.encode(), 0o644),
    ]
