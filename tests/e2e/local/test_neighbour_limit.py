"""A local Swarm larger than the kernel's neighbour table holds is refused up front.

The limit is this machine's own (``net.ipv4.neigh.default.gc_thresh3``, read, never
changed by the test): the cluster asked for is one node more than it holds.
"""

from __future__ import annotations

import json
import math

import docker
import pytest

from fixtures.local import Flotte
from flotte.drivers.local import neighbours
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def test_a_swarm_the_neighbour_table_cannot_hold_is_refused_before_anything(
    flotte: Flotte, docker_engine: docker.DockerClient
) -> None:
    allowed = neighbours.limit()
    if allowed is None:
        pytest.skip("this kernel does not say its neighbour table's limit")
    nodes = math.isqrt(allowed) + 1
    res = flotte(
        "cluster", "create", "huge", "--driver", "local", "--node-count", str(nodes - 1),
        check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert f"{nodes}-node cluster" in lines[0] and f"allows {allowed}" in lines[0]
    assert "gc_thresh3" in lines[0]
    assert json.loads(flotte("cluster", "list", "-f", "json").stdout) == []
    mine = {"label": f"{OWNER_KEY}={flotte.installation}"}
    assert docker_engine.containers.list(ignore_removed=True, all=True, filters=mine) == []
    assert docker_engine.networks.list(filters=mine) == []
