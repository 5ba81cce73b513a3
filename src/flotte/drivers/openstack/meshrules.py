"""The WireGuard mesh's security group rules: UDP 51820 from each member, nothing else.

A cluster spread over several sites talks across them only through WireGuard
(flotte.mesh): its security group then gets one ingress rule per other member's
address (``remote_ip_prefix`` = a /32 or /128), on the mesh's UDP port only. The set is
made equal to what the mesh asks for each time members come or go: a rule of a member
that left is deleted. Swarm's own ports keep their member-only rules (resources.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from flotte.drivers.openstack.connection import Provider, status_of, translate


def mesh_rule(sg_id: str, source: str, port: int) -> dict[str, Any]:
    """One ingress rule: UDP ``port`` from ``source`` (an address or CIDR)."""
    net = ipaddress.ip_network(source, strict=False)
    return {
        "security_group_id": sg_id,
        "direction": "ingress",
        "ethertype": "IPv6" if net.version == 6 else "IPv4",
        "protocol": "udp",
        "port_range_min": port,
        "port_range_max": port,
        "remote_ip_prefix": str(net),
    }


def mesh_rules_of(rules: Iterable[Mapping[str, Any]], port: int) -> dict[str, str]:
    """The group's existing mesh rules: source CIDR -> rule ID. A rule is the mesh's when
    it opens exactly UDP ``port`` to one address (not a group, not a range)."""
    out: dict[str, str] = {}
    for r in rules:
        prefix = r.get("remote_ip_prefix")
        if (
            r.get("direction") == "ingress"
            and str(r.get("protocol")) in ("udp", "17")
            and r.get("port_range_min") == port
            and r.get("port_range_max") == port
            and prefix
            and not r.get("remote_group_id")
        ):
            net = ipaddress.ip_network(str(prefix), strict=False)
            if net.prefixlen == net.max_prefixlen:  # a member's address, not an operator's range
                out[str(net)] = str(r.get("id"))
    return out


async def sync_mesh_rules(p: Provider, sg_id: str, sources: Iterable[str], port: int) -> None:
    """Make the security group's mesh rules exactly one per address of ``sources``."""
    net = p.conn.network
    sg = await p.read(lambda: net.get_security_group(sg_id), "read security group")
    have = mesh_rules_of(sg.security_group_rules or [], port)
    wanted = {str(ipaddress.ip_network(s, strict=False)) for s in sources}
    missing = [mesh_rule(sg_id, s, port) for s in sorted(wanted - set(have))]
    for rule in missing:
        # One request per rule (a handful): a 409 is a rule a lost request made already.
        try:
            await p.run(
                partial(net.create_security_group_rule, **rule), "open the mesh port", raw=True
            )
        except Exception as err:
            if status_of(err) != 409:
                raise translate(err, "open the mesh port", p.spec) from err
    for source in sorted(set(have) - wanted):
        try:
            await p.run(
                partial(net.delete_security_group_rule, have[source]),
                "close the mesh port",
                raw=True,
            )
        except Exception as err:
            if status_of(err) != 404:  # already gone
                raise translate(err, "close the mesh port", p.spec) from err
