"""The installation's certificate authority and the certificates it signs.

One CA per installation (like docker-machine's ``~/.docker/machine/certs``) signs one
client certificate for the user and one server certificate per Docker engine. Keys are
ECDSA P-256 by default (fast to make, which matters when 30 nodes start at once); RSA
2048 is there for old clients (``FLOTTE_KEY_TYPE=rsa``). Private keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotte.config import write_public, write_secret

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
VALIDITY = dt.timedelta(days=1080)  # docker-machine's default, which users know


def _new_key(kind: str | None = None) -> PrivateKey:
    kind = (kind or os.environ.get("FLOTTE_KEY_TYPE") or "ecdsa").lower()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class TLSFiles:
    """Paths of a Docker TLS directory in docker's naming (ca.pem, cert.pem, key.pem)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"


@dataclass(frozen=True)
class ServerCert:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes


class CertificateAuthority:
    """Load or create the CA under ``directory`` and sign certificates with it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key: PrivateKey | None = None
        self._cert: x509.Certificate | None = None

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        # Kept apart from the client files, so DOCKER_CERT_PATH never exposes the CA key.
        return self.directory.parent / "ca" / "ca-key.pem"

    @property
    def client(self) -> TLSFiles:
        """The user's client certificate, in a directory usable as DOCKER_CERT_PATH."""
        return TLSFiles(self.directory)

    def ensure(self) -> CertificateAuthority:
        """Create the CA and the client certificate on first use; load them afterwards."""
        for d in (self.directory, self.ca_key_path.parent):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o700)
        if not self.ca_path.exists() or not self.ca_key_path.exists():
            self._create_ca()
        if not self.client.cert.exists() or not self.client.key.exists():
            self.regenerate_client()
        return self

    def _create_ca(self) -> None:
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flotte CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_secret(self.ca_key_path, _key_pem(key))
        write_public(self.ca_path, _cert_pem(cert))
        self._key, self._cert = key, cert

    def _load(self) -> tuple[PrivateKey, x509.Certificate]:
        if self._key is None or self._cert is None:
            key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
            self._key = key
            self._cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        return self._key, self._cert

    def _sign(self, common_name: str, *, server: bool, sans: list[str]) -> tuple[bytes, bytes]:
        ca_key, ca_cert = self._load()
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_general_names(sans)), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return _cert_pem(cert), _key_pem(key)

    def regenerate_client(self) -> None:
        cert, key = self._sign("flotte client", server=False, sans=[])
        write_secret(self.client.key, key)
        write_public(self.client.cert, cert)

    def server_cert(self, name: str, sans: list[str]) -> ServerCert:
        """A server certificate for a Docker engine reachable at each of ``sans``."""
        everything = sorted({*sans, "localhost", "127.0.0.1", name})
        cert, key = self._sign(name, server=True, sans=everything)
        return ServerCert(cert_pem=cert, key_pem=key, ca_pem=self.ca_path.read_bytes())


def _general_names(sans: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    return names


def cert_sans(pem: bytes) -> set[str]:
    """The IP addresses and DNS names a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return ips | set(ext.get_values_for_type(x509.DNSName))
