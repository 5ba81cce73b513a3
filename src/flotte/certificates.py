"""Certificate use cases: renewing the client certificate and rotating the CA.

The PKI itself (files, phases, signing) is ``pki.py``; what it cannot do alone is reach
every engine. A rotation walks every recorded machine and cluster node twice through
``resign``, a function of the service layer that re-provisions one node's engine
certificate by name (it returns False for a node that has no engine of ours to renew,
e.g. one still being created or one imported with its own CA). Between and after the
passes, flotte's Docker contexts are given the new files.

An interrupted rotation (a node that could not be reached, a killed command) is
resumed by running it again: the phase is recorded on disk and every step is
idempotent. No engine is ever left unable to talk to flotte's client: engines trust
both CAs until the client certificate comes from the new one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509

from flotte import contexts, dockerapi
from flotte.errors import FlotteError
from flotte.models import Endpoint
from flotte.pki import IDLE, STAGED, SWITCHED, CertificateAuthority, expiry_warning

Resign = Callable[[str], Awaitable[bool]]
Note = Callable[[str, str], None]  # (node, what happened)


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class MachineStore(Protocol):
    """What a rotation needs: every recorded machine and node, by name."""

    def all(self) -> Sequence[_Named]: ...


@dataclass
class RotationReport:
    """What a run of ``flotte ca rotate`` did; ``phase`` is where the rotation stands."""

    phase: str = IDLE
    resigned: set[str] = field(default_factory=set)  # engines (each is re-signed twice)
    skipped: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    contexts: set[str] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        return self.phase == IDLE and not self.failed


def _quiet(node: str, what: str) -> None:
    return None


async def rotate_ca(
    store: MachineStore,
    ca: CertificateAuthority,
    resign: Resign,
    *,
    parallel: int = 8,
    note: Note = _quiet,
) -> RotationReport:
    """Rotate (or resume rotating) the CA over every recorded machine and node."""
    report = RotationReport()
    ca.begin_rotation()
    report.contexts |= contexts.refresh_tls(ca)  # clients trust both CAs from here on
    for phase, then in ((STAGED, ca.switch_rotation), (SWITCHED, ca.finish_rotation)):
        if ca.phase() != phase:
            continue
        await _each(store, resign, parallel, note, report)
        if report.failed:
            report.phase = ca.phase()
            return report  # run again once the failed nodes answer: it resumes here
        then()
        report.contexts |= contexts.refresh_tls(ca)
    report.phase = ca.phase()
    return report


async def _each(
    store: MachineStore, resign: Resign, parallel: int, note: Note, report: RotationReport
) -> None:
    gate = asyncio.Semaphore(parallel)
    names = sorted({m.name for m in store.all()})  # read again: nodes come and go

    async def one(name: str) -> None:
        async with gate:
            note(name, "re-signing")
            try:
                done = await resign(name)
            except FlotteError as err:
                report.failed[name] = str(err)
                note(name, f"failed: {err}")
                return
            (report.resigned if done else report.skipped).add(name)
            note(name, "done" if done else "skipped (no engine of this CA)")

    await asyncio.gather(*(one(n) for n in names))


def renew_client(ca: CertificateAuthority) -> int:
    """A new client certificate, copied into every flotte Docker context; returns how many.

    The old certificate is not revoked: dockerd checks no revocation list, so it stays
    valid until it expires. Rotating the CA is what makes every older certificate useless.
    """
    ca.regenerate_client()
    return len(contexts.refresh_tls(ca))


async def engine_expiry(
    endpoint: Endpoint, ca: CertificateAuthority, *, timeout: float = 3.0
) -> str | None:
    """``"the engine's certificate expires in N days"`` within 30 days, else None.

    For ``machine ls``'s ERRORS column (the CA's and the client certificate's own
    warnings come from ``ca.expiry_warnings()``): one TLS handshake with the engine, to
    read the certificate it really serves. An engine that does not answer gives None.
    """
    ctx = dockerapi.ssl_context(ca)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.host, endpoint.docker_port, ssl=ctx, server_hostname=endpoint.host
            ),
            timeout,
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    if not der:
        return None
    expires = x509.load_der_x509_certificate(der).not_valid_after_utc
    return expiry_warning("the engine's certificate", expires)
