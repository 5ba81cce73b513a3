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

from flotte.client_tls import ClientTLS
from flotte.config import write_public
from flotte.errors import ConfigError
from flotte.pki import CertificateAuthority


def _root() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "contexts"


def _id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def context_name(name: str) -> str:
    return f"flotte-{name}"


def write(
    name: str,
    url: str,
    ca: CertificateAuthority | None = None,
    description: str = "",
    *,
    tls_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Create or update the context ``flotte-<name>`` pointing at ``url`` over TLS.

    The client material is the engine's own when ``tls_dir`` is given (an
    ``Endpoint.tls_dir``: a machine imported from docker-machine or a bundle), else the
    installation's CA and client certificate.
    """
    if tls_dir is not None:
        tls = ClientTLS.from_dir(Path(tls_dir))
    elif ca is not None:
        tls = ClientTLS.read(ca.ca_path, ca.client.cert, ca.client.key)
    else:
        raise ValueError("contexts.write needs the installation's CA or a tls_dir")
    ctx = context_name(name)
    meta = {
        "Name": ctx,
        "Metadata": {"Description": description or f"flotte {name}"},
        "Endpoints": {"docker": {"Host": url, "SkipTLSVerify": False}},
    }
    root = _root()
    tls.write(root / "tls" / _id(ctx) / "docker")
    write_public(root / "meta" / _id(ctx) / "meta.json", json.dumps(meta).encode())
    return ctx


def remove(name: str) -> None:
    ctx = context_name(name)
    root = _root()
    for sub in ("meta", "tls"):
        shutil.rmtree(root / sub / _id(ctx), ignore_errors=True)


def exists(name: str) -> bool:
    return (_root() / "meta" / _id(context_name(name)) / "meta.json").exists()


def refresh_tls(ca: CertificateAuthority) -> set[str]:
    """Give every context of this installation's CA the current client files.

    A context is ours when its ca.pem holds one of the CA certificates clients trust now
    (contexts of imported machines keep their own CA and are left alone). Returns the
    ids of the contexts it rewrote.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.hashes import SHA256

    ours = {c.fingerprint(SHA256()) for c in ca.trusted()}
    current = ClientTLS.read(ca.ca_path, ca.client.cert, ca.client.key)
    done = set()
    for tls in (_root() / "tls").glob("*/docker"):
        try:
            there = ClientTLS.from_dir(tls)
            theirs = {
                c.fingerprint(SHA256()) for c in x509.load_pem_x509_certificates(there.ca_pem)
            }
        except (ConfigError, ValueError):
            continue
        if theirs & ours and there != current:
            current.write(tls)
            done.add(tls.parent.name)
    return done
