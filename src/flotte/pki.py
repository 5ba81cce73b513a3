"""The installation's certificate authority, the certificates it signs, and its rotation.

One CA per installation (like docker-machine's ``~/.docker/machine/certs``) signs one
client certificate for the user and one server certificate per Docker engine. Keys are
ECDSA P-256 by default (fast to make, which matters when 30 nodes start at once); RSA
2048 is there for old clients (``FLOTTE_KEY_TYPE=rsa``). Private keys are written 0600.

Files (``certs`` is DOCKER_CERT_PATH; the CA key is kept apart from it)::

    secrets/ca/ca-key.pem          the CA key
    secrets/ca/.lock               first use and rotation hold it; loading shares it
    secrets/ca/rotation/           only while a rotation runs: state.json, the new CA
    secrets/certs/ca.pem           what clients trust: the CA (both CAs while rotating)
    secrets/certs/cert.pem,key.pem the client certificate

First use makes the CA and the client certificate under the lock, so commands started
together on a new home agree on one CA. Every load checks that the CA key, the CA
certificate and the client certificate belong together, and says how to repair them.

Rotation (``flotte ca rotate``) replaces the CA without cutting any engine off:

1. ``begin``: a new CA is made; clients trust both CAs (``staged``);
2. every engine gets a server certificate from the new CA and trusts both CAs;
3. ``switch``: the client certificate is re-issued by the new CA (``switched``);
4. every engine is told to trust the new CA only;
5. ``finish``: the new CA replaces the old one, whose key is deleted.

Each step is recorded before the next starts, so an interrupted rotation resumes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flotte.config import write_public, write_secret
from flotte.errors import FlotteError, UsageError
from flotte.state.lock import first_use

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
VALIDITY = dt.timedelta(days=1080)  # docker-machine's default, which users know
WARN_BEFORE = dt.timedelta(days=30)  # `machine ls` says so this long before expiry
IDLE, STAGED, SWITCHED = "idle", "staged", "switched"

# A DNS name (labels of letters, digits and '-', a leading '*.' allowed) or an IP.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class CertificateError(FlotteError):
    """The installation's certificates do not belong together, or cannot be read."""


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


def _public(obj: PrivateKey | x509.Certificate) -> bytes:
    pub = obj.public_key()
    return pub.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"{path} holds a key type flotte does not use")
    return key


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def not_after(pem: bytes) -> dt.datetime:
    """When the (first) certificate in ``pem`` expires (UTC)."""
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def expiry_warning(what: str, expires: dt.datetime, now: dt.datetime | None = None) -> str | None:
    """``"<what> expires in N days"`` within 30 days of ``expires``; None before that."""
    left = expires - (now or dt.datetime.now(dt.UTC))
    if left > WARN_BEFORE:
        return None
    if left.total_seconds() <= 0:
        return f"{what} expired on {expires:%Y-%m-%d}"
    return f"{what} expires in {left.days} days"


def check_san(value: str) -> str:
    """``value`` if it can be put in a certificate (a DNS name or an IP), else UsageError."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.split(".")
    if labels and labels[0] == "*":
        labels = labels[1:]  # a wildcard, leftmost label only
    if not value or len(value) > 253 or not labels or not all(map(_LABEL.match, labels)):
        raise UsageError(
            f"--tls-san {value!r} is neither a DNS name nor an IP address",
            hint="use names like node1.lab.example.org or addresses like 192.0.2.10",
        )
    return value


def valid_san(value: str) -> bool:
    try:
        check_san(value)
    except UsageError:
        return False
    return True


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
    ca_pem: bytes  # what the engine trusts for clients: one CA, or two while rotating

    @property
    def not_after(self) -> dt.datetime:
        return not_after(self.cert_pem)


class CertificateAuthority:
    """Load or create the CA under ``directory`` and sign certificates with it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._signer: tuple[PrivateKey, x509.Certificate] | None = None

    # -- where things are ----------------------------------------------------------------
    @property
    def ca_path(self) -> Path:
        """What clients trust (DOCKER_CERT_PATH/ca.pem): the CA, or both while rotating."""
        return self.directory / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        # Kept apart from the client files, so DOCKER_CERT_PATH never exposes the CA key.
        return self.directory.parent / "ca" / "ca-key.pem"

    @property
    def _rotation(self) -> Path:
        return self.ca_key_path.parent / "rotation"

    @property
    def client(self) -> TLSFiles:
        """The user's client certificate, in a directory usable as DOCKER_CERT_PATH."""
        return TLSFiles(self.directory)

    @contextmanager
    def _lock(self, *, shared: bool = False) -> Iterator[None]:
        with first_use(self.ca_key_path.parent / ".lock", shared=shared):
            yield

    # -- first use and load --------------------------------------------------------------
    def ensure(self) -> CertificateAuthority:
        """Create the CA and the client certificate on first use; check them on every load."""
        if self._complete():
            with self._lock(shared=True):
                self.check()
            return self
        with self._lock():
            if not self.ca_key_path.exists():
                self._create_ca()
            elif not self.ca_path.exists():
                # the key survived (a run cut between the two writes, or a deleted file):
                # the same key and name give a certificate every engine still accepts
                self._write_ca_cert(_load_key(self.ca_key_path))
            if not self.client.cert.exists() or not self.client.key.exists():
                self.regenerate_client(locked=True)
            self.check()
        return self

    def _complete(self) -> bool:
        paths = (self.ca_key_path, self.ca_path, self.client.cert, self.client.key)
        return all(p.exists() for p in paths)

    def check(self) -> None:
        """Raise CertificateError (one line, the repair in it) unless everything matches."""
        key_path = self._signer_paths()[0]
        try:
            key = _load_key(key_path)
            signer = self._signer_cert()
            trusted = self.trusted()
            client = x509.load_pem_x509_certificate(self.client.cert.read_bytes())
            client_key = _load_key(self.client.key)
        except (OSError, ValueError) as err:
            raise CertificateError(
                f"the installation's certificates cannot be read ({err})",
                hint="run 'flotte ca rotate' to make a new CA and re-sign every engine",
            ) from err
        if _public(key) != _public(signer):
            raise CertificateError(
                f"the CA key {key_path} does not belong to the CA certificate {self.ca_path}",
                hint="run 'flotte ca rotate' to make a new CA and re-sign every engine",
            )
        if not any(_issued_by(client, ca) for ca in trusted) or _public(client_key) != _public(
            client
        ):
            raise CertificateError(
                f"the client certificate in {self.client.directory} was not issued by this "
                "installation's CA or does not match its key",
                hint="run 'flotte ca renew-client' to issue a new one",
            )
        self._signer = (key, signer)

    def _create_ca(self, key_path: Path | None = None, cert_path: Path | None = None) -> None:
        key = _new_key()
        write_secret(key_path or self.ca_key_path, _key_pem(key))
        self._write_ca_cert(key, cert_path)

    def _write_ca_cert(self, key: PrivateKey, path: Path | None = None) -> x509.Certificate:
        # Each CA has a name of its own (derived from its key, so a lost certificate is
        # remade identical): during a rotation, clients and engines hold two CAs and
        # pick the right one by name and key identifier.
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        common_name = f"flotte CA {ski.digest.hex()[:12]}"
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
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
            .add_extension(ski, critical=False)
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
        write_public(path or self.ca_path, _cert_pem(cert))
        return cert

    # -- rotation state ------------------------------------------------------------------
    def phase(self) -> str:
        """``idle``, ``staged`` (engines being re-signed) or ``switched`` (dropping the old)."""
        try:
            state = json.loads((self._rotation / "state.json").read_text())
        except (OSError, ValueError):
            return IDLE
        phase = state.get("phase") if isinstance(state, dict) else None
        return phase if phase in (STAGED, SWITCHED) else IDLE

    def _signer_paths(self) -> tuple[Path, Path]:
        if self.phase() == IDLE:
            return self.ca_key_path, self.ca_path
        return self._rotation / "ca-key.pem", self._rotation / "ca.pem"

    def _signer_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self._signer_paths()[1].read_bytes())

    def trusted(self) -> list[x509.Certificate]:
        """The CA certificates clients trust now (two while a rotation runs)."""
        return x509.load_pem_x509_certificates(self.ca_path.read_bytes())

    def engine_trust(self) -> bytes:
        """The ca.pem an engine is given: which client certificates it accepts."""
        if self.phase() == SWITCHED:
            return self._signer_paths()[1].read_bytes()
        return self.ca_path.read_bytes()

    def signed_by_current(self, cert_pem: bytes) -> bool:
        """True when ``cert_pem`` was issued by the CA that signs new certificates now."""
        try:
            return _issued_by(x509.load_pem_x509_certificate(cert_pem), self._signer_cert())
        except (OSError, ValueError):
            return False

    def begin_rotation(self) -> None:
        """Make the new CA and have clients trust both (resumes an interrupted begin).

        Works on a broken CA too (a key that does not match its certificate): that is
        how such an installation is repaired. The client certificate is then issued by
        the new CA at once, since the old one could not be trusted anyway.
        """
        with self._lock():
            if self.phase() != IDLE:
                return
            try:
                self.check()
                broken = False
            except CertificateError:
                broken = True
            parent = self._rotation.parent
            for leftover in parent.glob("rotation.*"):
                shutil.rmtree(leftover, ignore_errors=True)
            shutil.rmtree(self._rotation, ignore_errors=True)
            staging = parent / f"rotation.new-{uuid.uuid4().hex[:8]}"
            staging.mkdir(mode=0o700)
            self._create_ca(staging / "ca-key.pem", staging / "ca.pem")
            old = x509.load_pem_x509_certificates(self.ca_path.read_bytes())[:1]
            new = (staging / "ca.pem").read_bytes()
            # clients trust the new CA before any engine shows a certificate it signed
            write_public(self.ca_path, b"".join(_cert_pem(c) for c in old) + new)
            write_public(staging / "state.json", json.dumps({"phase": STAGED}).encode())
            staging.rename(self._rotation)
            self._signer = None
            if broken:
                self.regenerate_client(locked=True)

    def switch_rotation(self) -> None:
        """Every engine trusts the new CA: re-issue the client certificate with it."""
        with self._lock():
            if self.phase() != STAGED:
                raise CertificateError(f"no rotation to switch (phase {self.phase()})")
            self._signer = None
            self.regenerate_client(locked=True)
            write_public(self._rotation / "state.json", json.dumps({"phase": SWITCHED}).encode())

    def finish_rotation(self) -> None:
        """Every engine trusts the new CA only: it becomes the CA; the old key is deleted."""
        with self._lock():
            if self.phase() != SWITCHED:
                raise CertificateError(f"no rotation to finish (phase {self.phase()})")
            write_secret(self.ca_key_path, (self._rotation / "ca-key.pem").read_bytes())
            write_public(self.ca_path, (self._rotation / "ca.pem").read_bytes())
            done = self._rotation.with_name(f"rotation.done-{uuid.uuid4().hex[:8]}")
            self._rotation.rename(done)  # the one step that makes the rotation finished
            shutil.rmtree(done, ignore_errors=True)
            self._signer = None
            self.check()

    # -- signing -------------------------------------------------------------------------
    def _load(self) -> tuple[PrivateKey, x509.Certificate]:
        if self._signer is None:
            key_path, cert_path = self._signer_paths()
            self._signer = (
                _load_key(key_path),
                x509.load_pem_x509_certificate(cert_path.read_bytes()),
            )
        return self._signer

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
            .not_valid_after(min(now + VALIDITY, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_general_names(sans)), critical=False
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        return _cert_pem(cert), _key_pem(key)

    def regenerate_client(self, *, locked: bool = False) -> bytes | None:
        """A new client certificate (the old one still works: dockerd checks no CRL).

        Returns the certificate it replaced (None on first use), so the copies of it in
        flotte's Docker contexts can be replaced too.
        """
        if not locked:
            with self._lock():
                return self.regenerate_client(locked=True)
        old = self.client.cert.read_bytes() if self.client.cert.exists() else None
        cert, key = self._sign("flotte client", server=False, sans=[])
        write_secret(self.client.key, key)
        write_public(self.client.cert, cert)
        return old

    def server_cert(self, name: str, sans: list[str]) -> ServerCert:
        """A server certificate for a Docker engine reachable at each of ``sans``."""
        # addresses and names gathered from hosts are untrusted: only valid ones go in
        everything = sorted({s for s in (*sans, "localhost", "127.0.0.1", name) if valid_san(s)})
        cert, key = self._sign(name, server=True, sans=everything)
        return ServerCert(cert_pem=cert, key_pem=key, ca_pem=self.engine_trust())

    # -- expiry --------------------------------------------------------------------------
    def expiry_warnings(self, now: dt.datetime | None = None) -> list[str]:
        """What expires within 30 days: the CA(s) and the client certificate."""
        found = [
            expiry_warning("the flotte CA", ca.not_valid_after_utc, now) for ca in self.trusted()
        ]
        found.append(
            expiry_warning("the client certificate", not_after(self.client.cert.read_bytes()), now)
        )
        return [w for w in found if w]


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
