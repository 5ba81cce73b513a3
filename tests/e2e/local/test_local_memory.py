"""More local nodes than this host holds (its memory, the kernel's neighbour table):
refused with the numbers before anything is made."""

from __future__ import annotations

import math

import docker
import pytest

from fixtures.local import Flotte
from flotte.drivers.local import neighbours
from flotte.drivers.local.memory import MARGIN_MIB, NODE_MIB, available_mib, check_fits
from flotte.errors import QuotaExceeded
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def owned(flotte: Flotte, client: docker.DockerClient) -> tuple[list[str], list[str], str]:
    """This installation's containers and networks, and its recorded clusters."""
    mine = {"label": f"{OWNER_KEY}={flotte.installation}"}
    containers = sorted(
        c.name for c in client.containers.list(ignore_removed=True, all=True, filters=mine)
    )
    networks = sorted(n.name for n in client.networks.list(filters=mine))
    return containers, networks, flotte("cluster", "list").stdout


def test_more_nodes_than_memory_is_refused_before_anything(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    free = available_mib()
    assert free is not None
    # Twice what fits now: memory other tests free or take meanwhile does not change it.
    workers = 2 * free // NODE_MIB
    flotte("machine", "ls")  # the installation exists, so the snapshot sees its marks
    before = owned(flotte, docker_engine)
    line = refused(flotte, workers)
    assert f"{workers + 1} local nodes need about" in line, line
    assert "MiB available (MemAvailable)" in line, line
    assert owned(flotte, docker_engine) == before
    assert "huge" not in before[2]


def refused(flotte: Flotte, workers: int) -> str:
    """``cluster create huge`` with 1 manager and ``workers``: its one error line."""
    res = flotte(
        "cluster", "create", "huge", "--driver", "local", "--node-count", str(workers),
        check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, res.stderr
    return errors[0]


def test_a_swarm_the_neighbour_table_cannot_hold_is_refused_before_anything(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    # this machine's own limit, read and never changed: one node more than it holds
    allowed = neighbours.limit()
    if allowed is None:
        pytest.skip("this kernel does not say its neighbour table's limit")
    nodes = math.isqrt(allowed) + 1
    free = available_mib()
    if free is not None and free < MARGIN_MIB + nodes * NODE_MIB:
        pytest.skip(f"{nodes} nodes do not fit in memory here: that refusal comes first")
    flotte("machine", "ls")
    before = owned(flotte, docker_engine)
    line = refused(flotte, nodes - 1)
    assert f"{nodes}-node cluster" in line and f"allows {allowed}" in line, line
    assert "gc_thresh3" in line
    assert owned(flotte, docker_engine) == before


def test_what_fits_passes_and_the_line_names_both_numbers() -> None:
    free = available_mib()
    assert free is not None and free > MARGIN_MIB + NODE_MIB, "this host has no room"
    fits = (free - MARGIN_MIB) // NODE_MIB
    check_fits(fits, free)  # no error
    with pytest.raises(QuotaExceeded) as err:
        check_fits(fits + 1, free)
    assert str(err.value).startswith(
        f"{fits + 1} local nodes need about {(fits + 1) * NODE_MIB + MARGIN_MIB} MiB"
        f" ({NODE_MIB} MiB each plus {MARGIN_MIB} MiB for the host), but this host has"
        f" {free} MiB available (MemAvailable): at most {fits} fit now"
    )
