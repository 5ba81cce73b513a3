"""The privileged probe of a killed process does not stay on the engine."""

from __future__ import annotations

import contextlib
import time
import uuid

import docker
import pytest

from flotte.drivers.local.connection import PROBE_LABEL, sweep_probes

pytestmark = pytest.mark.docker


def test_a_probe_left_by_a_killed_process_is_swept_and_a_live_one_kept(
    docker_engine: docker.DockerClient, node_image: str
) -> None:
    # What a process killed between the probe's create and its remove leaves.
    left = docker_engine.containers.create(
        node_image,
        entrypoint=["true"],
        labels={PROBE_LABEL: "1"},
        name=f"probe-{uuid.uuid4().hex[:8]}",
    )
    try:
        sweep_probes(docker_engine)  # two minutes: it may be another process's live probe
        left.reload()
        time.sleep(2.5)
        assert sweep_probes(docker_engine, older_than=2.0) >= 1
        with pytest.raises(docker.errors.NotFound):
            left.reload()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            left.remove(force=True)
