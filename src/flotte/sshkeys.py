"""SSH key pairs flotte makes for the machines it creates (ed25519, private part 0600)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from flotte.config import write_public, write_secret


def new_keypair(path: Path, comment: str = "flotte") -> str:
    """Write a new ed25519 key pair (private part 0600 before anyone hears of it).

    Returns the public key line without comment, as clouds' key-pair imports want it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    write_secret(path, private)
    write_public(path.with_name(path.name + ".pub"), public + f" {comment}\n".encode())
    return public.decode()


def ensure_keypair(path: Path, comment: str = "flotte") -> tuple[Path, bytes]:
    """Load or create ``path`` (private, OpenSSH format) and ``path.pub``; return both."""
    pub = path.with_name(path.name + ".pub")
    if not (path.exists() and pub.exists()):
        new_keypair(path, comment)
    return path, pub.read_bytes()
