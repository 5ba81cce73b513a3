"""What a health check reads, and nothing more: the facts of one round over a cluster.

Per node, one HTTPS request to its engine (``GET /info``); per cluster, one swarm node
listing from a manager that answered. The provider (``driver.state``: a container, a
server, an instance, an SSH host) is asked only about nodes whose engine did not answer
or that the swarm does not list Ready: a node whose engine answers is evidently running.
Disk and memory pressure are read over SSH (``df`` and ``/proc/meminfo``, no root
needed) where the node has an SSH endpoint. ``flotte cluster check`` reads every node's;
a watch round refreshes at most ``PRESSURE_PER_ROUND`` of them, the stalest first, and
reuses the others' for ``PRESSURE_TTL`` seconds, so a round over a big cluster costs
about one call per healthy node plus one per cluster.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotte.coe import probe
from flotte.coe.probe import EngineInfo, Member, ProbeError
from flotte.errors import FlotteError
from flotte.models import Endpoint, NodeState, Role
from flotte.service.installation import Installation
from flotte.state.records import ClusterRecord, Node

ENGINE_TIMEOUT = 3.0  # seconds for one engine to answer GET /info
PROVIDER_TIMEOUT = 30.0  # seconds for a driver's state() (a cloud API call)
SSH_TIMEOUT = 4.0
PRESSURE_TTL = 60.0  # seconds a node's disk and memory figures are reused
PRESSURE_PER_ROUND = 8  # nodes whose figures one watch round refreshes, at most
PRESSURE_SCRIPT = (
    "df -Pk /var/lib/docker 2>/dev/null || df -Pk /; "
    "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo"
)
DISK_FREE_MIN = 10.0  # percent of the Docker disk that must stay free
MEMORY_FREE_MIN = 5.0  # percent of memory that must stay available


@dataclass(frozen=True)
class Pressure:
    """Disk (the filesystem of /var/lib/docker) and memory of one node."""

    disk_used_pct: float
    disk_free_gb: float
    mem_available_pct: float
    mem_available_mb: int

    def problem(self) -> str:
        """Why this is pressure, or "" when there is room."""
        out = []
        if 100.0 - self.disk_used_pct < DISK_FREE_MIN:
            out.append(
                f"disk pressure: {self.disk_used_pct:.0f}% of the Docker disk used "
                f"({self.disk_free_gb:.1f} GB free)"
            )
        if self.mem_available_pct < MEMORY_FREE_MIN:
            out.append(
                f"memory pressure: {self.mem_available_pct:.1f}% available "
                f"({self.mem_available_mb} MB)"
            )
        return "; ".join(out)

    def view(self) -> dict[str, Any]:
        return {
            "disk_used_pct": round(self.disk_used_pct, 1),
            "disk_free_gb": round(self.disk_free_gb, 1),
            "memory_available_pct": round(self.mem_available_pct, 1),
            "memory_available_mb": self.mem_available_mb,
        }


def parse_pressure(output: str) -> Pressure | None:
    """Read ``df -Pk`` and two /proc/meminfo lines; None if the output is not that."""
    disk: tuple[float, float] | None = None
    mem: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[4].endswith("%") and parts[2].isdigit() and parts[3].isdigit():
            # df's own Capacity: used / (used + available); blocks reserved for root
            # are neither
            used, avail = int(parts[2]), int(parts[3])
            if used + avail > 0:
                disk = (100.0 * used / (used + avail), avail / 1024 / 1024)
        elif len(parts) >= 2 and parts[0] in ("MemTotal:", "MemAvailable:") and parts[1].isdigit():
            mem[parts[0][:-1]] = int(parts[1])
    if disk is None or not mem.get("MemTotal") or "MemAvailable" not in mem:
        return None
    available = mem["MemAvailable"]
    return Pressure(
        disk_used_pct=disk[0],
        disk_free_gb=disk[1],
        mem_available_pct=100.0 * available / mem["MemTotal"],
        mem_available_mb=available // 1024,
    )


@dataclass
class NodeFacts:
    """What one round learned of one node."""

    engine: EngineInfo | None = None
    engine_error: str = ""  # why the engine did not answer ("" when it did, or no endpoint)
    provider: NodeState | None = None  # None: not asked, or the question failed
    provider_error: str = ""
    pressure: Pressure | None = None
    pressure_error: str = ""


@dataclass
class SwarmFacts:
    """The swarm's node list as one manager gave it, or why there is none."""

    members: list[Member] | None = None
    via: str = ""  # the manager that answered
    error: str = ""
    no_leader: bool = False  # a manager answered 503: the swarm has no leader (quorum lost)


@dataclass
class Calls:
    """Remote calls one round made, by kind (the cost the bench reports)."""

    engine: int = 0
    swarm: int = 0
    provider: int = 0
    ssh: int = 0

    @property
    def total(self) -> int:
        return self.engine + self.swarm + self.provider + self.ssh

    def view(self) -> dict[str, int]:
        return {
            "engine": self.engine,
            "swarm": self.swarm,
            "provider": self.provider,
            "ssh": self.ssh,
            "total": self.total,
        }


@dataclass
class PressureCache:
    """Pressure figures per node, with when they were read (kept between watch rounds).

    A round refreshes at most ``budget`` nodes' figures, the stalest first, so a round
    over a big cluster never waits for fifty SSH handshakes (None: every stale node).
    """

    ttl: float = PRESSURE_TTL
    budget: int | None = PRESSURE_PER_ROUND
    entries: dict[str, tuple[float, Pressure | None, str]] = field(default_factory=dict)

    def age(self, node: str, now: float) -> float:
        found = self.entries.get(node)
        return now - found[0] if found else float("inf")


DriverFor = Callable[[str], Any]  # driver name -> Driver (with the cluster's options)


class Prober:
    """Gathers the facts of one round; ``calls`` counts what it asked."""

    def __init__(
        self,
        inst: Installation,
        driver_for: DriverFor,
        *,
        pressure: bool = False,
        cache: PressureCache | None = None,
    ) -> None:
        self.inst = inst
        self.driver_for = driver_for
        self.pressure = pressure
        self.cache = cache if cache is not None else PressureCache(ttl=0.0, budget=None)
        self.calls = Calls()
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    def _ctx(self, endpoint: Endpoint) -> ssl.SSLContext:
        if endpoint.tls_dir not in self._contexts:
            self._contexts[endpoint.tls_dir] = probe.tls_context(self.inst.ca, endpoint.tls_dir)
        return self._contexts[endpoint.tls_dir]

    async def gather(
        self, cluster: ClusterRecord, nodes: list[Node]
    ) -> tuple[dict[str, NodeFacts], SwarmFacts]:
        facts = {n.name: NodeFacts() for n in nodes}
        engines = not cluster.spec.no_provision
        swarm = SwarmFacts()
        if engines:
            await _all(self._engine(n, facts[n.name]) for n in nodes if n.endpoint is not None)
            swarm = await self._swarm(nodes, facts)
        listed = {m.hostname: m for m in swarm.members or []}
        by_id = {m.id: m for m in swarm.members or []}

        def doubtful(n: Node) -> bool:
            f = facts[n.name]
            if f.engine is None:
                return True
            m = by_id.get(f.engine.node_id) or listed.get(n.name)
            return swarm.members is not None and (m is None or m.state != "ready")

        work = [self._provider(n, facts[n.name]) for n in nodes if doubtful(n)]
        if engines and self.pressure:
            work += self._pressure_work(nodes, facts)
        await _all(work)
        return facts, swarm

    def _pressure_work(self, nodes: list[Node], facts: dict[str, NodeFacts]) -> list[Any]:
        """Read the stalest nodes' figures (within the budget); reuse the others'."""
        now = time.monotonic()
        up = [n for n in nodes if facts[n.name].engine is not None and n.endpoint is not None]
        stale = sorted(
            (n for n in up if self.cache.age(n.name, now) > self.cache.ttl),
            key=lambda n: -self.cache.age(n.name, now),
        )
        read = stale if self.cache.budget is None else stale[: self.cache.budget]
        for n in up:
            if n not in read and n.name in self.cache.entries:
                _, facts[n.name].pressure, facts[n.name].pressure_error = self.cache.entries[n.name]
        return [self._pressure(n, facts[n.name]) for n in read]

    async def _engine(self, node: Node, out: NodeFacts) -> None:
        assert node.endpoint is not None
        self.calls.engine += 1
        try:
            out.engine = await probe.engine_info(
                node.endpoint, self._ctx(node.endpoint), ENGINE_TIMEOUT
            )
        except ProbeError as err:
            out.engine_error = str(err)
        except (OSError, ssl.SSLError) as err:  # e.g. the client certificate cannot be read
            out.engine_error = f"cannot ask: {err}"

    async def _swarm(self, nodes: list[Node], facts: dict[str, NodeFacts]) -> SwarmFacts:
        managers = [
            n
            for n in sorted(nodes, key=lambda n: n.index)
            if n.role == Role.MANAGER and n.endpoint is not None
        ]
        answering = [n for n in managers if (e := facts[n.name].engine) and e.manager]
        if not answering:
            why = "no manager's engine answers" if managers else "no manager has an engine yet"
            return SwarmFacts(error=why)
        errors, no_leader = [], False
        for n in answering:  # the first normally answers; the next only if it fails
            assert n.endpoint is not None
            self.calls.swarm += 1
            try:
                listed = await probe.members(n.endpoint, self._ctx(n.endpoint), ENGINE_TIMEOUT)
                return SwarmFacts(members=listed, via=n.name)
            except ProbeError as err:
                errors.append(f"{n.name}: {err}")
                if err.status == 503:
                    no_leader = True
                    break  # every manager would say the same
        return SwarmFacts(error="; ".join(errors), no_leader=no_leader)

    async def _provider(self, node: Node, out: NodeFacts) -> None:
        if node.record is None:
            out.provider_error = "no record of it (its create did not finish)"
            return
        self.calls.provider += 1
        try:
            driver = self.driver_for(node.driver)
            out.provider = await asyncio.wait_for(driver.state(node.record), PROVIDER_TIMEOUT)
        except TimeoutError:
            out.provider_error = f"the {node.driver} API did not answer in {PROVIDER_TIMEOUT:.0f} s"
        except FlotteError as err:
            out.provider_error = str(err)
        except Exception as err:  # a cloud SDK's own error: the state is unknown, say why
            out.provider_error = f"{type(err).__name__}: {err}"

    async def _pressure(self, node: Node, out: NodeFacts) -> None:
        now = time.monotonic()
        assert node.endpoint is not None
        self.calls.ssh += 1
        out.pressure, out.pressure_error = await read_pressure(
            node.endpoint, self.inst.paths.known_hosts
        )
        self.cache.entries[node.name] = (now, out.pressure, out.pressure_error)


async def read_pressure(endpoint: Endpoint, known_hosts: Path) -> tuple[Pressure | None, str]:
    """Disk and memory of a node over SSH, or None and why they could not be read."""
    from flotte.provision.sessions import SSHTarget, session

    target = SSHTarget(
        host=endpoint.host,
        port=endpoint.ssh_port,
        user=endpoint.ssh_user,
        key=Path(endpoint.ssh_key) if endpoint.ssh_key else None,
        known_hosts=known_hosts,
        connect_timeout=SSH_TIMEOUT,
        attempts=1,
    )
    try:
        async with asyncio.timeout(SSH_TIMEOUT * 2):
            async with session(target) as sess:
                result = await sess.run(
                    PRESSURE_SCRIPT, sudo=False, check=False, timeout=SSH_TIMEOUT, what="df"
                )
    except TimeoutError:
        return None, "not read: SSH timed out"
    except FlotteError as err:
        return None, f"not read: {err.message}"
    except Exception as err:  # asyncssh's own errors: the figures are simply unknown
        return None, f"not read: {type(err).__name__}: {err}"
    found = parse_pressure(result.stdout)
    return (found, "") if found else (None, "not read: unexpected df or meminfo output")


async def _all(aws: Any) -> None:
    tasks: list[Awaitable[None]] = list(aws)
    if tasks:
        await asyncio.gather(*tasks)
