"""Where the ssh driver logs in: SSH targets from options (at create) or records (later)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.base import DriverContext
from flotte.drivers.ssh.options import HostEntry, parse_host, port_number
from flotte.errors import UsageError
from flotte.models import NodeRecord
from flotte.provision.sessions import SSHTarget


class Targets:
    """Builds :class:`SSHTarget` values: per-node options override the driver's own."""

    def __init__(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    def _option(self, key: str) -> Any:
        value = self.ctx.options.get(key)
        return None if value in (None, (), []) else value

    def entry(self, options: Mapping[str, Any], host: str | None = None) -> HostEntry:
        raw = host or options.get("ssh_host") or self.ctx.options.get("ssh_host")
        if not raw:
            raise UsageError(
                "the ssh driver needs a host", hint="give --ssh-host [user@]host[:port]"
            )
        return parse_host(str(raw))

    def from_options(
        self, options: Mapping[str, Any], *, host: str | None = None, quick: bool = False
    ) -> SSHTarget:
        """The target of a node placed on ``host`` (NodeSpec.host), else ``--ssh-host``."""
        entry = self.entry(options, host)

        def opt(key: str) -> Any:
            value = options.get(key)
            return self._option(key) if value in (None, "") else value

        key = entry.key or opt("ssh_key")
        return SSHTarget(
            host=entry.host,
            port=entry.port or port_number(opt("ssh_port") or 22, "--ssh-port"),
            user=entry.user or opt("ssh_user") or "root",
            key=Path(str(key)).expanduser() if key else None,
            known_hosts=self.ctx.known_hosts,
            attempts=1 if quick else 3,
            connect_timeout=5.0 if quick else 10.0,
        )

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
