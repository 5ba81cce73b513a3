"""Neutron security groups enforced inside a Docker-backed server's network namespace.

Ingress rules become an iptables chain ``DEVCLOUD-SG`` in the mangle table, jumped to
from PREROUTING for packets arriving on the server's own interfaces (``eth+``), so
what a nested Docker engine publishes is filtered too, as a VM's port would be;
traffic between the server's own containers (docker0) is not. Replies to allowed
or outgoing connections pass (conntrack). Egress rules are not enforced (Neutron's
default allows all egress). A port with port security off lets everything in.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("flotte.devcloud.agent")

CHAIN = "DEVCLOUD-SG"

APPLY = f"""set -e
printf '%s\\n' "$RULES" | iptables-restore --noflush
iptables -t mangle -C PREROUTING -i eth+ -j {CHAIN} 2>/dev/null \\
  || iptables -t mangle -I PREROUTING 1 -i eth+ -j {CHAIN}
"""


def _rule(rule: Mapping[str, Any], members: Mapping[str, list[str]]) -> list[str]:
    """iptables arguments (one list per source) for one ingress rule; [] if none apply."""
    if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != "IPv4":
        return []
    match = ""
    proto = rule.get("protocol")
    if proto is not None and str(proto).lower() not in ("any", "0"):
        match += f" -p {proto}"
        low, high = rule.get("port_range_min"), rule.get("port_range_max")
        if str(proto).lower() in ("tcp", "udp", "6", "17") and low is not None:
            match += f" --dport {low}:{high if high is not None else low}"
    group = rule.get("remote_group_id")
    sources = members.get(group, []) if group else [rule.get("remote_ip_prefix") or "0.0.0.0/0"]
    return [f"-A {CHAIN} -s {src}{match} -j RETURN" for src in sources]


def render(
    ports: Iterable[Any], groups: Mapping[str, Any], members: Mapping[str, list[str]]
) -> str:
    """The iptables-restore text for a server with ``ports``."""
    lines = [
        "*mangle",
        f":{CHAIN} - [0:0]",
        f"-A {CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
    ]
    open_port = False
    for port in ports:
        if port.is_port_security_enabled is False:
            open_port = True
            continue
        for gid in port.security_group_ids or []:
            group = groups.get(gid)
            for rule in getattr(group, "security_group_rules", None) or []:
                lines.extend(_rule(rule, members))
    lines.append(f"-A {CHAIN} -j RETURN" if open_port else f"-A {CHAIN} -j DROP")
    lines.append("COMMIT")
    return "\n".join(dict.fromkeys(lines)) + "\n"  # drop repeated rules, keep order


def members_of(ports: Iterable[Any]) -> dict[str, list[str]]:
    """Security group ID -> IPv4 fixed IPs of the ports in it (for remote-group rules)."""
    out: dict[str, list[str]] = {}
    for port in ports:
        ips = [ip["ip_address"] for ip in port.fixed_ips if "." in ip["ip_address"]]
        for gid in port.security_group_ids or []:
            out.setdefault(gid, []).extend(ips)
    return out


class Firewalls:
    """Applies each running container's rules when they change or the container restarts."""

    def __init__(self) -> None:
        self._applied: dict[str, str] = {}

    def apply(self, container: Any, rules: str) -> None:
        key = container.attrs.get("State", {}).get("StartedAt", "")
        digest = hashlib.sha256((key + rules).encode()).hexdigest()
        if self._applied.get(container.id) == digest:
            return
        res = container.exec_run(["sh", "-c", APPLY], environment={"RULES": rules})
        if res.exit_code != 0:
            log.warning("security groups on %s: %s", container.name, res.output.decode()[-300:])
            return
        self._applied[container.id] = digest

    def forget(self, container_id: str) -> None:
        self._applied.pop(container_id, None)
