"""The mesh as data: members, addresses, each node's WireGuard configuration and the
firewall rules that open only the WireGuard port between members. Pure: no I/O.

Within one site nodes keep their private addresses; a cluster needs the mesh only when
its node groups sit on more than one site. Endpoints are the addresses each provider
reports (a floating IP, an SSH host's address): nothing is guessed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from flotte.errors import PlanError

WG_PORT = 51820
INTERFACE = "flotte0"
MESH_NETWORK = ipaddress.ip_network("10.213.0.0/16")
KEEPALIVE = 25  # seconds: keeps a NAT's mapping open for peers behind one


@dataclass(frozen=True)
class Member:
    """One node of the mesh."""

    name: str
    site: str  # e.g. "openstack:devcloud", "ssh": nodes of one site share a network
    public_address: str | None  # what other sites reach it on (None: none reported)
    public_key: str
    index: int  # stable: its mesh address is MESH_NETWORK[index + 1]
    private_address: str | None = None  # where members of its own site reach it

    @property
    def mesh_address(self) -> str:
        return str(MESH_NETWORK[self.index + 1])


def needed(sites: Iterable[str]) -> bool:
    """A mesh only when a cluster spans more than one site."""
    return len(set(sites)) > 1


def assign(existing: Mapping[str, int], names: Iterable[str]) -> dict[str, int]:
    """Mesh indices: nodes keep theirs; a new node takes the lowest free one."""
    out = {n: i for n, i in existing.items()}
    used = set(out.values())
    free = 0
    for name in sorted(set(names) - set(out)):
        while free in used:
            free += 1
        out[name] = free
        used.add(free)
    limit = MESH_NETWORK.num_addresses - 2
    if used and max(used) >= limit:
        raise PlanError(f"the mesh holds at most {limit} nodes")
    return out


def check_reachable(members: Sequence[Member]) -> None:
    """Before anything is made: sites that cannot reach each other are one clear line.

    Two sites connect when at least one side has public addresses (WireGuard's
    keepalive lets a node without one dial out to one with one)."""
    public: dict[str, bool] = {}
    for m in members:
        public[m.site] = public.get(m.site, True) and m.public_address is not None
    check_sites(public)


def check_sites(public: Mapping[str, bool]) -> None:
    """The same check from what each site's driver says of its nodes to come (``site:
    whether they will have public addresses``), before anything is made."""
    closed = sorted(s for s, has in public.items() if not has)
    if len(closed) > 1:
        raise PlanError(
            f"sites {closed[0]} and {closed[1]} cannot reach each other: neither reports a "
            "public address for its nodes",
            hint="give one of them public addresses (floating IPs, public hosts, "
            "--local-public-network)",
        )


def wg_config(me: Member, private_key: str, members: Sequence[Member]) -> str:
    """``wg setconf`` text for ``me``: a peer for every other member. Swarm advertises
    mesh addresses, so members of ``me``'s own site are peers too, reached on their
    private address (their traffic never leaves that network); members of another site
    on their public address."""
    lines = ["[Interface]", f"PrivateKey = {private_key}", f"ListenPort = {WG_PORT}", ""]
    for peer in members:
        if peer.name == me.name:
            continue
        lines += [
            "[Peer]",
            f"PublicKey = {peer.public_key}",
            f"AllowedIPs = {peer.mesh_address}/32",
        ]
        local = peer.site == me.site and peer.private_address
        endpoint = peer.private_address if local else peer.public_address
        if endpoint:
            lines.append(f"Endpoint = {_endpoint(endpoint)}")
        if not local and (not me.public_address or not peer.public_address):
            lines.append(f"PersistentKeepalive = {KEEPALIVE}")
        lines.append("")
    return "\n".join(lines)


def _endpoint(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"[{ip}]:{WG_PORT}" if ip.version == 6 else f"{ip}:{WG_PORT}"


def allowed_sources(me: Member, members: Sequence[Member]) -> list[str]:
    """The addresses that may send to ``me``'s WireGuard port: the other members'
    public addresses (and private ones of ``me``'s own site), as /32 (or /128).
    Nothing else is opened; Swarm's ports stay closed."""
    out = []
    for m in members:
        if m.name == me.name:
            continue
        own = m.private_address if m.site == me.site else None
        for address in (m.public_address, own):
            if address:
                ip = ipaddress.ip_address(address)
                out.append(f"{ip}/{32 if ip.version == 4 else 128}")
    return sorted(set(out))
