"""Each cluster of flotte serve has its own CA.

Its engines' server certificates are signed by it (the worker hands it to the drivers),
so a client certificate signed for one cluster (Magnum's ``POST /v1/certificates``, what
``openstack coe cluster config`` asks for) opens that cluster's engines and no other.
The CA is made when the API accepts the cluster and is recorded with it: the
certificate in clear, the key sealed with the serve key. A worker writes it to
``secrets/cluster-ca/NAME`` (0600 keys) before running the cluster's requests, in the
layout ``pki.CertificateAuthority`` reads.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from flotte.config import write_public, write_secret
from flotte.errors import UsageError
from flotte.identity.vault import Vault
from flotte.pki import VALIDITY, CertificateAuthority
from flotte.state.tenancy import CARecord

MAX_CSR = 16_384  # bytes: a CSR is a few hundred


def _bound(cluster: str, what: str) -> str:
    return f"ca:{cluster}:{what}"


def new_ca(cluster: str, vault: Vault) -> CARecord:
    """A new CA (and the service's own client pair) for ``cluster``, keys sealed."""
    with tempfile.TemporaryDirectory(prefix="flotte-ca-") as tmp:
        ca = CertificateAuthority(Path(tmp) / "certs").ensure()
        return CARecord(
            cluster=cluster,
            ca_pem=ca.ca_path.read_text(),
            ca_key=vault.seal(ca.ca_key_path.read_bytes(), _bound(cluster, "ca")),
            client_pem=ca.client.cert.read_text(),
            client_key=vault.seal(ca.client.key.read_bytes(), _bound(cluster, "client")),
        )


def materialize(record: CARecord, vault: Vault, directory: Path) -> CertificateAuthority:
    """Write the CA under ``directory`` (as ``CertificateAuthority`` lays it out)."""
    ca = CertificateAuthority(directory / "certs")
    for d in (ca.directory, ca.ca_key_path.parent):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
    if not ca.ca_path.exists() or ca.ca_path.read_text() != record.ca_pem:
        write_secret(ca.ca_key_path, vault.open(record.ca_key, _bound(record.cluster, "ca")))
        write_secret(ca.client.key, vault.open(record.client_key, _bound(record.cluster, "client")))
        write_public(ca.client.cert, record.client_pem.encode())
        write_public(ca.ca_path, record.ca_pem.encode())  # last: it marks the set complete
    return ca


def forget(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def sign_csr(record: CARecord, vault: Vault, csr_pem: str) -> str:
    """A client certificate for the CSR's key, signed by the cluster's CA."""
    if len(csr_pem) > MAX_CSR:
        raise UsageError("the CSR is too large")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as err:
        raise UsageError(f"the CSR is not a PEM certificate request: {err}") from None
    if not csr.is_signature_valid:
        raise UsageError("the CSR's signature does not match its key")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise UsageError("the CSR's key must be RSA or ECDSA")
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise UsageError("the CSR's RSA key must have at least 2048 bits")
    key = serialization.load_pem_private_key(
        vault.open(record.ca_key, _bound(record.cluster, "ca")), None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    ca_cert = x509.load_pem_x509_certificate(record.ca_pem.encode())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()
