"""The serve key: one secret per installation that seals what must stay secret at rest
(per-project driver accounts, per-cluster CA keys) and signs standalone tokens.

The key file holds 32 random bytes (base64), mode 0600, made on first use; every serve
process of an installation must read the same file. Each use gets its own key derived
with HKDF, and every sealed blob is bound to what it belongs to (AES-GCM associated
data: ``account:PROJECT:DRIVER``, ``ca:CLUSTER``), so a blob copied to another project's
row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flotte.config import write_secret
from flotte.errors import ConfigError

PREFIX = "v1:"


class Vault:
    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise ConfigError("the serve key must be at least 32 bytes")
        self._master = master
        self._aead = AESGCM(self._derive(b"flotte seal"))

    @classmethod
    def from_file(cls, path: Path) -> Vault:
        """Load the key file, making it (0600) when it does not exist yet."""
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            write_secret(tmp, base64.b64encode(os.urandom(32)))
            try:
                os.link(tmp, path)  # atomic: when processes start together, the first wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        try:
            master = base64.b64decode(path.read_bytes().strip(), validate=True)
            mode = path.stat().st_mode
        except (OSError, binascii.Error) as err:
            raise ConfigError(
                f"cannot read the serve key {path}: {err}",
                hint="it holds 32 random bytes in base64; restore it from a backup",
            ) from err
        if mode & 0o077:
            raise ConfigError(f"the serve key {path} is readable by others: chmod 600 it")
        return cls(master)

    def _derive(self, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._master)

    def fernet(self, purpose: str) -> Fernet:
        """A Fernet key of its own for ``purpose`` (standalone tokens)."""
        return Fernet(base64.urlsafe_b64encode(self._derive(b"flotte fernet " + purpose.encode())))

    def seal(self, data: bytes, bound_to: str) -> str:
        nonce = os.urandom(12)
        blob = self._aead.encrypt(nonce, data, bound_to.encode())
        return PREFIX + base64.b64encode(nonce + blob).decode()

    def open(self, sealed: str, bound_to: str) -> bytes:
        if not sealed.startswith(PREFIX):
            raise ConfigError(f"a sealed value of {bound_to} has an unknown format")
        try:
            raw = base64.b64decode(sealed[len(PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode())
        except (binascii.Error, InvalidTag, ValueError) as err:
            raise ConfigError(
                f"cannot open the sealed secret of {bound_to}",
                hint="was the serve key replaced? every serve process needs the same key file",
            ) from err
