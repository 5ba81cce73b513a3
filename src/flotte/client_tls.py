"""A Docker client's TLS material (ca.pem, cert.pem, key.pem) held in memory, checked, written.

An engine that flotte did not provision trusts its own CA: a machine imported from
docker-machine, or one shared from another computer through a bundle. Its client
material travels as a :class:`ClientTLS` and lands in a directory laid out like
``DOCKER_CERT_PATH`` (the key 0600, the directory 0700). The CA's private key is never
part of it: whoever holds this material can use the engine, not sign for it.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from flotte.config import write_public, write_secret
from flotte.errors import ConfigError

if TYPE_CHECKING:
    from flotte.pki import CertificateAuthority

FILES = ("ca.pem", "cert.pem", "key.pem")


def engine_files(tls_dir: str | None, ca: CertificateAuthority) -> tuple[Path, Path, Path]:
    """ca.pem, cert.pem and key.pem that reach one engine.

    ``tls_dir`` is an ``Endpoint.tls_dir``: the engine's own material (a machine imported
    from docker-machine or a bundle); None means the installation's CA and client.
    """
    if tls_dir:
        directory = Path(tls_dir)
        ca_file, cert, key = (directory / name for name in FILES)
        return ca_file, cert, key
    return ca.ca_path, ca.client.cert, ca.client.key


def engine_ssl_context(tls_dir: str | None, ca: CertificateAuthority) -> ssl.SSLContext:
    """A client TLS context that verifies one engine and shows it the right certificate."""
    ca_file, cert, key = engine_files(tls_dir, ca)
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _public_der(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    data: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class ClientTLS:
    """The three PEM files a Docker client needs to reach one engine over TLS."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def read(cls, ca: Path, cert: Path, key: Path) -> ClientTLS:
        """Read the three files; a missing or unreadable one is a ConfigError naming it."""
        parts = []
        for what, path in (("CA certificate", ca), ("client certificate", cert), ("key", key)):
            try:
                parts.append(path.read_bytes())
            except FileNotFoundError as err:
                raise ConfigError(f"no {what} ({path})") from err
            except OSError as err:
                raise ConfigError(f"cannot read the {what} {path}: {err.strerror}") from err
        return cls(*parts)

    @classmethod
    def from_dir(cls, directory: Path) -> ClientTLS:
        return cls.read(*(directory / name for name in FILES))

    def _certs(self) -> tuple[list[x509.Certificate], x509.Certificate]:
        try:
            cas = x509.load_pem_x509_certificates(self.ca_pem)
        except ValueError as err:
            raise ConfigError("ca.pem is not a PEM certificate") from err
        try:
            cert = x509.load_pem_x509_certificate(self.cert_pem)
        except ValueError as err:
            raise ConfigError("cert.pem is not a PEM certificate") from err
        return cas, cert

    @property
    def not_after(self) -> dt.datetime:
        """When the client certificate expires (UTC)."""
        return self._certs()[1].not_valid_after_utc

    def check(self, now: dt.datetime | None = None) -> None:
        """Raise ConfigError unless the material can work: parsable, matching, signed, valid.

        Each reason is one phrase (``client certificate expired on 2021-03-04``) that a
        caller puts after the machine's name.
        """
        now = now or dt.datetime.now(dt.UTC)
        cas, cert = self._certs()
        try:
            # Only the public half is compared with the certificate here; OpenSSL's full
            # RSA consistency check costs ~50 ms a key, and the engine's TLS handshake
            # rejects a broken key anyway.
            key = serialization.load_pem_private_key(
                self.key_pem, password=None, unsafe_skip_rsa_key_validation=True
            )
        except TypeError as err:
            raise ConfigError("key.pem is protected by a passphrase") from err
        except ValueError as err:
            raise ConfigError("key.pem is not a PEM private key") from err
        if _public_der(key) != _public_der(cert):
            raise ConfigError("key.pem is not the key of cert.pem")
        if not any(_issued_by(cert, ca) for ca in cas):
            raise ConfigError("cert.pem was not signed by ca.pem")
        for what, c in (("client certificate", cert), ("CA certificate", cas[0])):
            if c.not_valid_after_utc <= now:
                raise ConfigError(f"{what} expired on {_day(c.not_valid_after_utc)}")
            if c.not_valid_before_utc > now:
                raise ConfigError(f"{what} is not valid before {_day(c.not_valid_before_utc)}")

    def write(self, directory: Path) -> Path:
        """Write ca.pem, cert.pem and key.pem (0600) into ``directory`` (0700)."""
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        write_public(directory / "ca.pem", self.ca_pem)
        write_public(directory / "cert.pem", self.cert_pem)
        write_secret(directory / "key.pem", self.key_pem)
        return directory


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def server_cert_expiry(pem: bytes) -> dt.datetime | None:
    """When an engine's certificate expires, or None when ``pem`` is not a certificate."""
    try:
        return x509.load_pem_x509_certificate(pem).not_valid_after_utc
    except ValueError:
        return None
