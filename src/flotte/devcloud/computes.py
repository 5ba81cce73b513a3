"""devcloud's fake compute hosts beyond the first (``up --computes N``).

A cloud spreads its servers over many hosts; devcloud's one fake host made Nova's
work grow with the square of the servers: at each claim nova-compute reads the
allocations of every instance on its host (one Placement GET each), under its one
resource lock. Host k (2..N) is a nova-compute of its own, named ``devcloud-k``: it
reads nova.conf, then an overlay with its host name and a state directory (its node
UUID file, instances, locks) of its own.

A host taken away (a smaller N) must hold no server: Nova would leave a server on a
stopped host waiting for a delete no process reads. Its service record is deleted
(Nova then deletes its compute node, Placement provider and host mapping) and so is
its state directory, so that a later larger N makes it anew.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flotte.config import write_secret
from flotte.devcloud import procs, render, services
from flotte.devcloud.layout import Layout
from flotte.errors import FlotteError

MAX_COMPUTES = 32
# What a nova-compute process holds (measured: ~150 MB resident) with room to grow.
MEMORY_PER_HOST_MIB = 200
_EXTRA = re.compile(r"^nova-(\d+)$")  # a host's state directory


def host(index: int) -> str:
    return "devcloud" if index == 1 else f"devcloud-{index}"


def process(index: int) -> str:
    return "nova-compute" if index == 1 else f"nova-compute-{index}"


def extra_processes(count: int) -> tuple[str, ...]:
    """The processes of hosts 2..count, in start order."""
    return tuple(process(i) for i in range(2, count + 1))


def _state(layout: Layout, index: int) -> Path:
    return layout.state_dir / f"nova-{index}"


def _conf_path(layout: Layout, index: int) -> Path:
    return layout.etc / "nova" / f"nova-compute-{index}.conf"


def overlay(layout: Layout, index: int) -> render.Sections:
    """Read after nova.conf by host ``index``'s nova-compute: only what differs."""
    state = _state(layout, index)
    return {
        "DEFAULT": {
            "host": host(index),
            "state_path": str(state),
            "instances_path": str(state / "instances"),
        },
        "oslo_concurrency": {"lock_path": str(state / "locks")},
    }


def args(layout: Layout, index: int) -> list[str]:
    return [
        str(layout.bin("nova-compute")),
        *render.conf_args(layout, "nova"),
        "--config-file",
        str(_conf_path(layout, index)),
    ]


def made_extras(layout: Layout) -> list[int]:
    """Indexes of the extra hosts made so far (each has a state directory)."""
    found = []
    for state in layout.state_dir.glob("nova-*") if layout.state_dir.exists() else []:
        match = _EXTRA.match(state.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def check_count(current: int, wanted: int) -> None:
    """Refuse a count out of range, or more new hosts than free memory holds, before
    anything starts."""
    if not 1 <= wanted <= MAX_COMPUTES:
        raise FlotteError(
            f"--computes {wanted} is out of range",
            hint=f"give a number of fake compute hosts from 1 to {MAX_COMPUTES}",
        )
    new = max(0, wanted - current)
    need = new * MEMORY_PER_HOST_MIB
    free = _available_mib()
    if free is not None and need > free:
        fits = current + free // MEMORY_PER_HOST_MIB
        raise FlotteError(
            f"--computes {wanted} needs about {need} MiB more memory; {free} MiB is available",
            hint=f"ask for at most {fits} compute hosts, or free memory first",
        )


def _available_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def adopt_first(layout: Layout, conn: Any) -> None:
    """Give the first host's nova-compute the node UUID already in Placement when its
    file is missing.

    Without the file, a restarted nova-compute refuses to start ("No local node
    identity found"); devclouds made by an older flotte have no such file.
    """
    id_file = layout.state_dir / "nova" / "compute_id"
    if id_file.exists():
        return
    for rp in conn.placement.resource_providers(name=host(1)):
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(rp.id)


def map_first(layout: Layout, conn: Any) -> None:
    """Map the first host into cell1 (what discover_hosts does) once it shows in
    Placement: that makes it schedulable and listed. The others are mapped by the
    scheduler, and ``wait_ready`` waits for every host's mapping."""
    procs.wait_until(
        lambda: any(True for _ in conn.placement.resource_providers()),
        what="nova-compute",
        timeout=120,
        layout=layout,
        process="nova-compute",
        interval=1,
    )
    services.discover_hosts(layout)


def start(layout: Layout, count: int) -> None:
    """Write the overlays and start the missing hosts' processes (2..count)."""
    for index in range(2, count + 1):
        state = _state(layout, index)
        (state / "locks").mkdir(parents=True, exist_ok=True)
        write_secret(_conf_path(layout, index), render.ini(overlay(layout, index)).encode())
        name = process(index)
        if procs.running(layout, name) is None:
            procs.start(layout, name, args(layout, index), cwd=layout.state_dir)


def wait_ready(layout: Layout, conn: Any, count: int) -> None:
    """Every host up and mapped into cell1 (the scheduler maps new hosts every 2 s)."""
    wanted = {host(i) for i in range(1, count + 1)}

    def ready() -> bool:
        up = {
            s.host
            for s in conn.compute.services(binary="nova-compute")
            if s.state == "up" and s.host in wanted
        }
        mapped = {h.name for h in conn.compute.hypervisors() if h.name in wanted}
        return up == wanted == mapped

    procs.wait_until(
        ready,
        what=f"{count} nova-compute hosts",
        timeout=180,
        layout=layout,
        process=process(count),
        interval=1,
    )


def check_empty(conn: Any, count: int, going: list[int]) -> None:
    """Refuse to take away hosts that still hold servers."""
    for index in going:
        # `compute_host`: openstacksdk drops a `host` filter it does not know.
        held = list(conn.compute.servers(all_projects=True, compute_host=host(index)))
        if held:
            raise FlotteError(
                f"compute host {host(index)} still holds {len(held)} server(s)",
                hint=f"delete them first, or keep --computes {index}",
            )


def beyond(layout: Layout, count: int) -> list[int]:
    """The hosts made so far that a count of ``count`` takes away."""
    return [i for i in made_extras(layout) if i > count]


def remove(layout: Layout, conn: Any | None, going: list[int], count: int) -> list[str]:
    """Stop the hosts ``going`` (past ``count``); with a connection, also delete their
    Nova records and state (their servers were checked first: ``check_empty``)."""
    from openstack.exceptions import ConflictException

    # Side by side: each nova-compute takes seconds to shut down gracefully (nine of
    # them one after the other: two minutes).
    with ThreadPoolExecutor(max_workers=max(1, len(going))) as pool:
        was = list(pool.map(lambda i: procs.stop(layout, process(i)), going))
    stopped = [process(i) for i, ran in zip(going, was, strict=True) if ran]
    if conn is None:
        return stopped  # the records stay; a later `up` with these hosts adopts them
    for index in going:
        for svc in conn.compute.services(host=host(index), binary="nova-compute"):
            try:
                conn.compute.delete_service(svc)
            except ConflictException as err:  # a server came after check_empty
                raise FlotteError(
                    f"compute host {host(index)} got a server while being taken away",
                    hint="delete it, then run `flotte devcloud up --computes "
                    f"{count}` again (the host runs again on the next `up`)",
                ) from err
        shutil.rmtree(_state(layout, index), ignore_errors=True)
        _conf_path(layout, index).unlink(missing_ok=True)
    return stopped


def made_processes(layout: Layout) -> list[str]:
    """The processes of every extra host made so far (``down`` stops them)."""
    return [process(i) for i in made_extras(layout)]
