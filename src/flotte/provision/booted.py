"""Provisioning a cloud server that flotte just booted: the cloud drivers' one call.

OpenStack and EC2 nodes differ in how they boot, not in how they become Docker hosts:
wait for sshd (a server is "running" well before it listens), then the same SSH
provisioner as existing servers, with every name clients may use in the certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flotte.models import Endpoint, EngineOptions, NodeRecord
from flotte.pki import CertificateAuthority
from flotte.provision.docker_host import ProvisionReport, provision_docker_host
from flotte.provision.sessions import SSHTarget


async def provision_booted(
    node: NodeRecord,
    endpoint: Endpoint,
    engine: EngineOptions,
    ca: CertificateAuthority,
    *,
    wait: float,
    known_hosts: Path | None,
    owner: dict[str, str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    install_url: str | None = None,
) -> ProvisionReport:
    """Make a booted server a TLS Docker host; a second call renews its certificate."""
    target = SSHTarget(
        host=endpoint.host,
        port=endpoint.ssh_port,
        user=endpoint.ssh_user,
        key=Path(endpoint.ssh_key) if endpoint.ssh_key else None,
        known_hosts=known_hosts,
        wait=wait,
    )
    report = await provision_docker_host(
        target,
        engine,
        ca,
        node.name,
        sans=[a for a in (*node.addresses, *engine.tls_sans) if a],
        owner=owner or None,
        progress=progress,
        install_url=install_url,
        # provisioning a provisioned node again is what regenerate-certs asks for
        renew_cert=bool(node.data.get("provisioned")),
    )
    node.data["provisioned"] = True
    return report
