"""Whether the nodes asked for fit in this host's memory, checked before any is made.

A node is a container running its own dockerd and containerd, plus a
containerd-shim on the host. Measured on this project's 2-core, 24 GB machine
(2026-12-01, nodes of a 50-node Swarm, load 12.7): 113-130 MiB of RSS inside each node
(dockerd 72-89, containerd 37, sshd 3) and 13 MiB of shim, i.e. 126-143 MiB. A node's
cost is taken as 160 MiB, and 1 GiB is left to the host, its engine and flotte.
"""

from __future__ import annotations

from pathlib import Path

from flotte.drivers.local.connection import engine_env
from flotte.errors import QuotaExceeded

NODE_MIB = 160
MARGIN_MIB = 1024


def available_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The kernel's MemAvailable in MiB, or None where there is no such file."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def engine_is_here() -> bool:
    """The engine runs on this host (its socket), so this host's memory is its memory."""
    host = engine_env().get("DOCKER_HOST", "")
    return not host or host.startswith(("unix://", "npipe://"))


def check_fits(nodes: int, available: int | None) -> None:
    """Refuse ``nodes`` new nodes that do not fit in ``available`` MiB, with the numbers."""
    if nodes <= 0 or available is None:
        return
    need = nodes * NODE_MIB + MARGIN_MIB
    if need > available:
        fit = max((available - MARGIN_MIB) // NODE_MIB, 0)
        raise QuotaExceeded(
            f"{nodes} local nodes need about {need} MiB ({NODE_MIB} MiB each plus"
            f" {MARGIN_MIB} MiB for the host), but this host has {available} MiB available"
            f" (MemAvailable): at most {fit} fit now; ask for fewer or free memory"
        )
