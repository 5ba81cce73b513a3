"""The kernel's neighbour (ARP) table against the size of a local Swarm.

Every node of a local cluster is a container on one bridge, and each node's engine
talks to every other (gossip, raft, overlay): each learns every other's link address,
so N nodes hold about N x N neighbour entries. The kernel's table is one for all
network namespaces, bounded by ``net.ipv4.neigh.default.gc_thresh3`` (1,024 by
default). Past it the kernel drops new resolutions ("neighbour table overflow") and
joins time out without a word: a 50-node cluster here stalled at 39 joined nodes,
4,437 entries in the table, and went on once the limit was raised. So it is said
before anything is made.
"""

from __future__ import annotations

from pathlib import Path

from flotte.errors import QuotaExceeded

GC_THRESH3 = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")


def entries_needed(nodes: int) -> int:
    """Neighbour entries a Swarm of ``nodes`` local nodes makes (each learns every
    other, and the host learns each)."""
    return nodes * nodes


def limit(path: Path = GC_THRESH3) -> int | None:
    """The table's hard limit, or None where the kernel does not say (not Linux)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check(nodes: int, path: Path = GC_THRESH3) -> None:
    """Refuse a Swarm of ``nodes`` local nodes that the neighbour table cannot hold."""
    allowed = limit(path)
    need = entries_needed(nodes)
    if allowed is None or need <= allowed:
        return
    fits = int(allowed**0.5)
    raise QuotaExceeded(
        f"a {nodes}-node cluster on the local driver needs about {need} kernel neighbour "
        f"(ARP) entries and this machine allows {allowed} "
        f"(net.ipv4.neigh.default.gc_thresh3), enough for {fits} nodes: past it joins "
        "time out",
        hint=f"raise it as root: sysctl -w net.ipv4.neigh.default.gc_thresh3={2 * need} "
        f"net.ipv4.neigh.default.gc_thresh2={need}; or ask for at most {fits} nodes",
    )
