"""Where the ssh driver logs in: SSH targets from node specs (at create) or records."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.base import DriverContext
from flotte.drivers.ssh.options import parse_host, port_number
from flotte.errors import UsageError
from flotte.models import NodeRecord, NodeSpec
from flotte.provision.sessions import SSHTarget


class Targets:
    """Builds :class:`SSHTarget` values: a node's own options override the driver's."""

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def of(self, host: str | None, options: Mapping[str, Any], *, quick: bool = False) -> SSHTarget:
        """The target of ``host`` (``[user@]host[:port] key=...``); with no host, the
        ``--ssh-host`` option (a lone machine)."""

        def opt(key: str) -> Any:
            value = options.get(key)
            if value in (None, "", (), []):
                value = self.ctx.options.get(key)
            return None if value in (None, "", (), []) else value

        raw = host or opt("ssh_host")
        if not raw:
            raise UsageError(
                "the ssh driver needs a host", hint="give --ssh-host [user@]host[:port]"
            )
        entry = parse_host(str(raw))
        key = entry.key or opt("ssh_key")
        port = opt("ssh_port")
        return SSHTarget(
            host=entry.host,
            # 0 is not "the default": a port given must be a port
            port=entry.port or (port_number(port, "--ssh-port") if port is not None else 22),
            user=entry.user or opt("ssh_user") or "root",
            key=Path(str(key)).expanduser() if key else None,
            known_hosts=self.ctx.known_hosts,
            attempts=1 if quick else 3,
            connect_timeout=5.0 if quick else 10.0,
        )

    def of_spec(self, spec: NodeSpec, *, quick: bool = False) -> SSHTarget:
        return self.of(spec.host, spec.options, quick=quick)

    def of_node(self, node: NodeRecord, *, quick: bool = False) -> SSHTarget:
        d = node.data
        return SSHTarget(
            host=d["ssh_host"],
            port=int(d.get("ssh_port") or 22),
            user=d.get("ssh_user") or "root",
            key=Path(d["ssh_key"]) if d.get("ssh_key") else None,
            known_hosts=self.ctx.known_hosts,
            attempts=1 if quick else 3,
            connect_timeout=5.0 if quick else 10.0,
        )
