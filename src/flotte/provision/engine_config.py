"""What dockerd on a node is told: daemon.json, extra flags and environment.

Pure functions shared by every driver: the local driver copies the result into a
container before it starts, the SSH provisioner uploads it to a host. The daemon
config lists the unix socket only when ``listen_unix`` is set: Debian's and Fedora's systemd
units pass ``-H fd://`` and dockerd refuses a host given twice.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from flotte.errors import UsageError
from flotte.models import EngineOptions
from flotte.pki import ServerCert

TLS_DIR = "/etc/docker/flotte"
DOCKER_TLS_PORT = 2376


@dataclass(frozen=True)
class EngineFile:
    path: str
    content: bytes
    mode: int


def _pairs(values: tuple[str, ...], flag: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {value!r} is not KEY=VALUE")
        out.append((key, val))
    return out


def validate(engine: EngineOptions) -> None:
    """Reject malformed engine flags before anything is created."""
    _pairs(engine.labels, "--engine-label")
    _pairs(engine.env, "--engine-env")
    for opt in engine.opts:
        if not opt or opt.startswith("-"):
            raise UsageError(
                f"--engine-opt {opt!r}: give it without dashes, e.g. 'log-level=debug'"
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
    flags = []
    for opt in engine.opts:
        key, sep, value = opt.partition("=")
        flags.append(f"--{key}={value}" if sep else f"--{key}")
    return flags


def environment(engine: EngineOptions) -> dict[str, str]:
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
