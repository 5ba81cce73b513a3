"""Per-node WireGuard keys: X25519, base64 as ``wg`` writes them, private keys 0600."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from flotte.config import write_secret
from flotte.errors import ConfigError


def generate() -> str:
    """A new private key, base64 (what ``wg genkey`` prints)."""
    raw = X25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def public_of(private: str) -> str:
    """The public key of ``private`` (what ``wg pubkey`` prints)."""
    try:
        raw = base64.b64decode(private, validate=True)
        key = X25519PrivateKey.from_private_bytes(raw)
    except ValueError as err:
        raise ConfigError(f"not a WireGuard private key ({err})") from None
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class KeyStore:
    """The private keys of one cluster's nodes: ``<dir>/<node>.key``, mode 0600."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, node: str) -> Path:
        return self.directory / f"{node}.key"

    def ensure(self, node: str) -> str:
        """The node's private key, made on first use."""
        path = self.path(node)
        if path.exists():
            return path.read_text().strip()
        return self.rotate(node)

    def rotate(self, node: str) -> str:
        """A new key for ``node`` (``cluster regenerate-certs``); the old one is gone."""
        private = generate()
        write_secret(self.path(node), (private + "\n").encode())
        return private

    def public(self, node: str) -> str:
        return public_of(self.ensure(node))

    def forget(self, node: str) -> None:
        self.path(node).unlink(missing_ok=True)

    def nodes(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.key"))
