"""Docker CLI contexts (``docker --context flotte-NAME``) written the way the CLI does.

The docker CLI keeps a context as ``meta/<sha256(name)>/meta.json`` plus its TLS files
under ``tls/<sha256(name)>/docker/``, below ``$DOCKER_CONFIG/contexts`` (default
``~/.docker``). Writing them directly avoids needing the docker CLI at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from flotte.config import write_public, write_secret
from flotte.pki import CertificateAuthority


def _root() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "contexts"


def _id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def context_name(name: str) -> str:
    return f"flotte-{name}"


def write(name: str, url: str, ca: CertificateAuthority, description: str = "") -> str:
    """Create or update the context ``flotte-<name>`` pointing at ``url`` over TLS."""
    ctx = context_name(name)
    meta = {
        "Name": ctx,
        "Metadata": {"Description": description or f"flotte {name}"},
        "Endpoints": {"docker": {"Host": url, "SkipTLSVerify": False}},
    }
    root = _root()
    tls = root / "tls" / _id(ctx) / "docker"
    write_public(tls / "ca.pem", ca.ca_path.read_bytes())
    write_public(tls / "cert.pem", ca.client.cert.read_bytes())
    write_secret(tls / "key.pem", ca.client.key.read_bytes())
    write_public(root / "meta" / _id(ctx) / "meta.json", json.dumps(meta).encode())
    return ctx


def remove(name: str) -> None:
    ctx = context_name(name)
    root = _root()
    for sub in ("meta", "tls"):
        shutil.rmtree(root / sub / _id(ctx), ignore_errors=True)


def exists(name: str) -> bool:
    return (_root() / "meta" / _id(context_name(name)) / "meta.json").exists()
