"""What a driver tells the SSH provisioner about a node (kept apart from the
provisioner itself, which loads asyncssh, so that drivers import it cheaply)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flotte.models import Endpoint, NodeRecord


@dataclass(frozen=True)
class SSHAccess:
    """How the provisioner reaches a node, as its driver knows it."""

    endpoint: Endpoint  # the address clients use, and the SSH port, user and key
    wait: float = 0.0  # seconds sshd may refuse connections (a server still booting)
    install: str = "auto"  # --engine-install when Docker is missing
    install_url: str | None = None  # --engine-install-url: a script instead of packages
    marks: Mapping[str, str] = field(default_factory=dict)  # written to owner.json
    attempts: int = 4  # connection attempts, besides ``wait``


def provisioned(node: NodeRecord) -> bool:
    """True once the node has been provisioned (records before 0.2 said "provisioned")."""
    return bool(node.data.get("provision") or node.data.get("provisioned"))
