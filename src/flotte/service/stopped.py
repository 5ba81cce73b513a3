"""Nodes a cluster change brings back before it runs: those whose driver says stopped.

A node whose engine died may take its machine with it: a local node's container ends
with its dockerd, a server may be shut off. Joining or removing nodes needs the
managers' engines (and a leaving node's), so such a change used to fail, be rolled
back, and fail again when run again. Running a change again must converge, so
``Clusters.change`` asks this module first and hands what it finds to the planner's
``restart`` (the step ``flotte cluster heal`` uses): the restart comes before any swarm
step. Only a node whose engine does not answer (as itself) is asked about, so a healthy
cluster costs one ``GET /info`` per node; a node the driver cannot judge is left to
``cluster heal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable

from flotte import dockerapi
from flotte.errors import FlotteError
from flotte.models import NodeState
from flotte.service.lifecycle import Runner, swarm_hostname
from flotte.state.records import Node
from flotte.state.status import READY


async def stopped_nodes(
    runner: Runner, nodes: Iterable[Node], skip: Iterable[str] = ()
) -> set[str]:
    """The names of ``nodes`` (but ``skip``) whose engine does not answer and whose
    driver says they are stopped."""
    ctx = dockerapi.ssl_context(runner.ca)
    left_out = set(skip)

    async def answers(node: Node) -> bool:
        # By its name: a stopped local node's address may have gone to a newer node
        # (its engine then answers there, with a certificate of the same CA).
        assert node.endpoint is not None and node.record is not None
        endpoint = node.endpoint
        found = await dockerapi.get(endpoint.host, endpoint.docker_port, ctx, "/info", 3.0)
        with contextlib.suppress(ValueError, AttributeError):
            return bool(json.loads(found or b"{}").get("Name") == swarm_hostname(node.record))
        return False

    async def stopped(node: Node) -> bool:
        if node.record is None or node.endpoint is None or node.status != READY:
            return False  # not made yet: the plan resumes it
        if node.name in left_out or await answers(node):
            return False
        try:
            state = await runner.driver(node.driver, node.group).state(node.record)
        except FlotteError:
            return False  # cannot tell: the change goes on, 'cluster heal' judges it
        return state == NodeState.STOPPED

    listed = list(nodes)
    found = await asyncio.gather(*(stopped(n) for n in listed))
    return {n.name for n, down in zip(listed, found, strict=True) if down}
