"""Provisioning one node over SSH: the step every driver that reaches its nodes by SSH
shares (``Driver.provision``).

A driver says how to reach a node (:class:`SSHAccess`: address, SSH login, how long a
booting server may take to answer, how to install Docker, the owner marks); this module
runs the one SSH provisioner (:mod:`flotte.provision.docker_host`) with every name
clients may use in the certificate and records what it did in the node's record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flotte.models import EngineOptions, NodeRecord
from flotte.pki import CertificateAuthority
from flotte.provision.access import SSHAccess, provisioned
from flotte.provision.docker_host import ProvisionReport, provision_docker_host
from flotte.provision.sessions import SSHTarget


async def provision_node(
    node: NodeRecord,
    access: SSHAccess,
    engine: EngineOptions,
    ca: CertificateAuthority,
    *,
    known_hosts: Path | None,
    progress: Callable[[str, str], None] | None = None,
) -> ProvisionReport:
    """Make the node a TLS Docker host; a second call renews its certificate.

    What was done is kept in ``node.data["provision"]``.
    """
    ep = access.endpoint
    target = SSHTarget(
        host=ep.host,
        port=ep.ssh_port,
        user=ep.ssh_user,
        key=Path(ep.ssh_key) if ep.ssh_key else None,
        known_hosts=known_hosts,
        attempts=access.attempts,
        wait=access.wait,
    )
    report = await provision_docker_host(
        target,
        engine,
        ca,
        node.name,
        sans=[a for a in (*node.addresses, *engine.tls_sans) if a],
        install=access.install,
        owner=dict(access.marks) or None,
        progress=progress,
        install_url=access.install_url,
        # provisioning a provisioned node again is what regenerate-certs asks for
        renew_cert=provisioned(node),
    )
    node.data.pop("provisioned", None)
    node.data["provision"] = {
        "docker_version": report.docker_version,
        "adopted": report.adopted,
        "installed": report.installed,
        "changes": report.changes,
        "warnings": report.warnings,
    }
    return report
