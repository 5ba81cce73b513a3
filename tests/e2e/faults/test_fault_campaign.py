"""A fixed-seed sample of the fault campaign (``bench/faults.py``), small enough for CI.

The same runs as the benchmark: an operation under a fault (SIGKILL of the CLI, API
faults from the proxy in front of moto, a failing or slow fake cloud, a node's dockerd
killed; on devcloud the proxy in front of Nova and Neutron), the command again, then the
invariants checked with independent clients. Seeds are fixed, so a failure here replays with
``bench/faults.py --driver D --seed SEED --runs 1``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fixtures.devcloud import devcloud  # noqa: F401 (the fixture, by name)
from fixtures.local import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from faults import campaign

ZERO = ("leaks", "stuck", "secret_sightings", "not_converged", "integrity_failures", "tracebacks")


def check(result: dict[str, object], runs: int) -> None:
    assert result["runs"] == runs
    found = {k: result[k] for k in ZERO if result[k]}
    assert found == {}, json.dumps(result["failures"], indent=2)


def test_fake_sample(tmp_path: Path) -> None:
    check(campaign("fake", 10, 1000, 0, tmp_path), 10)


def test_ec2_sample(tmp_path: Path) -> None:
    check(campaign("ec2", 6, 2000, 0, tmp_path), 6)


@pytest.mark.docker
def test_local_sample(tmp_path: Path, node_image: str) -> None:
    check(campaign("local", 4, 3000, 0, tmp_path), 4)


@pytest.mark.usefixtures("devcloud")
def test_openstack_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The devcloud fixture brings devcloud up and marks the test ``devcloud`` (its lane,
    # beside other devcloud tests: not devcloud_alone). The runs go to a project of
    # their own, not the test worker's nor the benchmark's (tenant "faults").
    # Seeds 5100-5104: lost answers, resets, a kill, 503 and 500, over machine
    # create/rm, resize up and cluster delete: each fault kind, the cheaper operations.
    monkeypatch.setenv("FLOTTE_FAULT_TENANT", "faultsci")
    check(campaign("openstack", 5, 5100, 0, tmp_path), 5)
