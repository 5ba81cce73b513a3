"""``flotte ca``: the installation's certificate authority: show, renew, rotate."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from flotte.cli.common import run, service
from flotte.cli.output import format_option, render_record


def _authority() -> Any:
    from flotte.config import paths
    from flotte.pki import CertificateAuthority

    return CertificateAuthority(paths().ensure().certs)


@click.group()
def ca() -> None:
    """The certificate authority that signs every engine's and the client's certificate."""


@ca.command("show")
@format_option()
def show(fmt: str) -> None:
    """The CA, the client certificate, when they expire, and any rotation under way."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from flotte.pki import not_after

    authority = _authority().ensure()
    cas = authority.trusted()
    record: dict[str, Any] = {
        "rotation": authority.phase(),
        "ca": [
            {
                "sha256": c.fingerprint(hashes.SHA256()).hex()[:16],
                "expires": f"{c.not_valid_after_utc:%Y-%m-%d}",
            }
            for c in cas
        ],
        "client_certificate": str(authority.client.cert),
        "client_expires": f"{not_after(authority.client.cert.read_bytes()):%Y-%m-%d}",
        "client_issuer": x509.load_pem_x509_certificate(
            authority.client.cert.read_bytes()
        ).issuer.rfc4514_string(),
        "warnings": authority.expiry_warnings(),
    }
    render_record(record, fmt)


@ca.command("renew-client")
def renew_client() -> None:
    """Issue a new client certificate; flotte's Docker contexts get it too.

    The old certificate is not revoked (dockerd checks no revocation list) and stays
    valid until it expires: after a leak, use 'flotte ca rotate' instead.
    """
    from flotte import certificates
    from flotte.pki import CertificateError

    authority = _authority()
    with contextlib.suppress(CertificateError):  # a mismatch is what this command repairs
        authority.ensure()
    count = certificates.renew_client(authority)
    authority.ensure()
    click.echo(f"new client certificate in {authority.client.directory} ({count} contexts updated)")


@ca.command("rotate")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallel", default=8, show_default=True, help="Engines re-signed at once.")
def rotate(yes: bool, parallel: int) -> None:
    """Replace the CA: every engine re-signed, the client re-issued, the old CA deleted.

    Engines trust both CAs while they are re-signed, so none stops answering; a node
    that cannot be reached stops the rotation half-way: run it again to resume.
    """
    from flotte import certificates
    from flotte.pki import IDLE

    authority = _authority()
    if not authority.ca_path.exists():
        authority.ensure()
        click.echo("no CA yet: made a new one")
        return
    if authority.phase() == IDLE and not yes:
        click.confirm("Re-sign every engine with a new CA?", abort=True)
    # Begun before the service loads the CA, so that a broken CA can be repaired this way.
    authority.begin_rotation()
    svc = service()

    def note(name: str, what: str) -> None:
        click.echo(f"  {name:<30} {what}", err=True)

    report = run(
        certificates.rotate_ca(svc.machines, svc.ca, _resigner(svc), parallel=parallel, note=note)
    )
    if report.failed:
        click.echo(
            f"Error: {len(report.failed)} engines could not be re-signed; the rotation is "
            f"paused (phase {report.phase}): fix them and run 'flotte ca rotate' again",
            err=True,
        )
        raise SystemExit(1)
    click.echo(
        f"CA rotated: {len(report.resigned)} engines re-signed, {len(report.skipped)} "
        f"skipped, {len(report.contexts)} contexts updated"
    )


def _resigner(svc: Any) -> Any:
    """Re-provision one recorded machine or node's engine certificate.

    The service layer's to give: this uses ``regenerate_certs`` (which re-provisions the
    engine through its driver) and skips nodes without an engine of ours.
    """

    async def resign(name: str) -> bool:
        node = svc.machines.get(name)
        if node.endpoint is None or node.endpoint.tls_dir:
            return False
        await svc.machines.regenerate_certs(name)
        return True

    return resign
