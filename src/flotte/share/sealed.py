"""Authenticated encryption of a bundle, for a passphrase or for one recipient's key.

A sealed file is ``MAGIC``, the length of a JSON header (4 bytes, big-endian), the
header, then the ciphertext of AES-256-GCM. The header says how the key is made and
is authenticated with the ciphertext (it is the AEAD's associated data), so changing
either one, or cutting the file short, makes opening fail; nothing is ever half read.

* passphrase: the key is scrypt(passphrase, random salt), n=2^15, r=8, p=1;
* recipient: an ephemeral X25519 exchange with the recipient's public key, then
  HKDF-SHA256. An OpenSSH ``ssh-ed25519`` key works as the recipient (its public key
  maps onto X25519 as RFC 7748 says Curve25519 and Ed25519 relate, and the private key
  opens it), so a teammate's ``~/.ssh/id_ed25519.pub`` is all one needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from flotte.errors import ConfigError, UsageError

MAGIC = b"flotte-bundle\n"
VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSPHRASE = 8
_HKDF_INFO = b"flotte bundle v1 x25519"
_P = 2**255 - 19  # the field of Curve25519 and Ed25519


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as err:
        raise ConfigError(f"the bundle's header is damaged ({what})") from err


def fingerprint(public: x25519.X25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def _montgomery(ed_public: bytes) -> bytes:
    """An Ed25519 public key's X25519 counterpart: u = (1 + y) / (1 - y) mod p."""
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow((1 - y) % _P, -1, _P) % _P
    return u.to_bytes(32, "little")


def recipient_key(text: str) -> x25519.X25519PublicKey:
    """Parse a recipient: an ``ssh-ed25519 AAAA... [comment]`` line (a ``.pub`` file)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    try:
        key = serialization.load_ssh_public_key(line.encode())
    except (ValueError, IndexError) as err:
        raise UsageError(
            "the recipient is not an OpenSSH public key",
            hint="give a line like 'ssh-ed25519 AAAA...' or the path of an id_ed25519.pub file",
        ) from err
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(
            f"a {line.split()[0]} key cannot receive a bundle: only ssh-ed25519 keys can",
            hint="use an ed25519 key (ssh-keygen -t ed25519) or a passphrase",
        )
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return x25519.X25519PublicKey.from_public_bytes(_montgomery(raw))


def identity_key(data: bytes, passphrase: bytes | None = None) -> x25519.X25519PrivateKey:
    """The X25519 private key of an OpenSSH ed25519 private key (its hashed seed)."""
    try:
        key = serialization.load_ssh_private_key(data, passphrase)
    except TypeError as err:
        raise UsageError("the identity key is protected by a passphrase: give it") from err
    except ValueError as err:
        raise UsageError(
            "the identity is not an OpenSSH private key, or its passphrase is wrong"
        ) from err
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError("the identity must be an ssh-ed25519 private key")
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return x25519.X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _hkdf(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_HKDF_INFO).derive(shared)


def _raw(public: x25519.X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Sealed:
    """A sealed file's plain header (what it is) and its ciphertext."""

    header: dict[str, Any]
    ciphertext: bytes
    aad: bytes

    @property
    def label(self) -> Mapping[str, Any]:
        """The unencrypted description: kind, name, access and how it is sealed."""
        return self.header.get("label") or {}

    @property
    def sealed_with(self) -> str:
        return str(self.header.get("key", {}).get("type", ""))


def _frame(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(raw)) + raw


def seal(
    plaintext: bytes,
    label: Mapping[str, Any],
    *,
    passphrase: str | None = None,
    recipient: x25519.X25519PublicKey | None = None,
) -> bytes:
    """Encrypt ``plaintext`` for a passphrase or a recipient; ``label`` stays readable."""
    if (passphrase is None) == (recipient is None):
        raise UsageError("seal a bundle with either a passphrase or a recipient's key")
    nonce = os.urandom(12)
    header: dict[str, Any] = {
        "version": VERSION,
        "label": dict(label),
        "cipher": "AES-256-GCM",
        "nonce": _b64(nonce),
        "size": len(plaintext) + 16,
    }
    if passphrase is not None:
        if len(passphrase) < MIN_PASSPHRASE:
            raise UsageError(
                f"the passphrase is too short: use at least {MIN_PASSPHRASE} characters"
            )
        salt = os.urandom(16)
        header["key"] = {
            "type": "scrypt",
            "salt": _b64(salt),
            "n": SCRYPT_N,
            "r": SCRYPT_R,
            "p": SCRYPT_P,
        }
        key = _scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    else:
        assert recipient is not None
        ephemeral = x25519.X25519PrivateKey.generate()
        eph_raw = _raw(ephemeral.public_key())
        header["key"] = {
            "type": "x25519",
            "ephemeral": _b64(eph_raw),
            "recipient": fingerprint(recipient),
        }
        key = _hkdf(ephemeral.exchange(recipient), eph_raw, _raw(recipient))
    frame = _frame(header)
    return frame + AESGCM(key).encrypt(nonce, plaintext, frame)


def parse(data: bytes, where: str) -> Sealed:
    """Read a sealed file's header; UsageError for a file that is not one or is cut short."""
    if not data.startswith(MAGIC):
        raise UsageError(f"{where} is not a flotte bundle")
    offset = len(MAGIC) + 4
    if len(data) < offset:
        raise UsageError(f"{where} is truncated: its header is cut short")
    (length,) = struct.unpack(">I", data[len(MAGIC) : offset])
    if len(data) < offset + length:
        raise UsageError(f"{where} is truncated: its header is cut short")
    try:
        header = json.loads(data[offset : offset + length])
    except ValueError as err:
        raise UsageError(f"{where} is damaged: its header is not readable") from err
    if not isinstance(header, dict):
        raise UsageError(f"{where} is damaged: its header is not readable")
    if header.get("version") != VERSION:
        raise UsageError(
            f"{where} is a bundle of version {header.get('version')!r}, which this flotte "
            f"cannot read (it reads version {VERSION})"
        )
    body = data[offset + length :]
    size = header.get("size")
    if isinstance(size, int) and len(body) < size:
        raise UsageError(f"{where} is truncated: {len(body)} of {size} bytes of content")
    return Sealed(header=header, ciphertext=body, aad=data[: offset + length])


def open_sealed(
    sealed: Sealed,
    where: str,
    *,
    passphrase: str | None = None,
    identity: x25519.X25519PrivateKey | None = None,
) -> bytes:
    """Decrypt; one UsageError line for a wrong key or a changed file."""
    key_info = sealed.header.get("key") or {}
    nonce = _unb64(sealed.header.get("nonce"), "nonce")
    kind = key_info.get("type")
    if kind == "scrypt":
        if passphrase is None:
            raise UsageError(f"{where} is sealed with a passphrase: give it")
        try:
            key = _scrypt(
                passphrase,
                _unb64(key_info.get("salt"), "salt"),
                int(key_info["n"]),
                int(key_info["r"]),
                int(key_info["p"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"{where} is damaged: its key parameters are not valid") from err
        wrong = "wrong passphrase, or the file was changed after it was written"
    elif kind == "x25519":
        if identity is None:
            raise UsageError(
                f"{where} is sealed for the key {key_info.get('recipient')}: give its private key"
            )
        mine = fingerprint(identity.public_key())
        if key_info.get("recipient") != mine:
            raise UsageError(
                f"{where} was sealed for another key ({key_info.get('recipient')}), not {mine}"
            )
        eph_raw = _unb64(key_info.get("ephemeral"), "ephemeral key")
        try:
            ephemeral = x25519.X25519PublicKey.from_public_bytes(eph_raw)
            shared = identity.exchange(ephemeral)
        except ValueError as err:
            raise UsageError(f"{where} is damaged: its ephemeral key is not valid") from err
        key = _hkdf(shared, eph_raw, _raw(identity.public_key()))
        wrong = "the file was changed after it was written"
    else:
        raise UsageError(f"{where} is damaged: unknown key type {kind!r}")
    try:
        return AESGCM(key).decrypt(nonce, sealed.ciphertext, sealed.aad)
    except (InvalidTag, ValueError) as err:
        raise UsageError(f"cannot open {where}: {wrong}") from err
