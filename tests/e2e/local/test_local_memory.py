"""More local nodes than this host's memory holds: refused with the numbers, nothing made."""

from __future__ import annotations

import docker
import pytest

from fixtures.local import Flotte
from flotte.drivers.local.memory import MARGIN_MIB, NODE_MIB, available_mib, check_fits
from flotte.errors import QuotaExceeded
from flotte.models import OWNER_KEY

pytestmark = pytest.mark.docker


def owned(flotte: Flotte, client: docker.DockerClient) -> tuple[list[str], list[str], str]:
    """This installation's containers and networks, and its recorded clusters."""
    mine = {"label": f"{OWNER_KEY}={flotte.installation}"}
    containers = sorted(c.name for c in client.containers.list(all=True, filters=mine))
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
    res = flotte(
        "cluster", "create", "huge", "--driver", "local", "--node-count", str(workers),
        check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, res.stderr
    assert f"{workers + 1} local nodes need about" in errors[0], errors[0]
    assert "MiB available (MemAvailable)" in errors[0], errors[0]
    assert owned(flotte, docker_engine) == before
    assert "huge" not in before[2]


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
