"""Planning cost: ``plan(recorded, desired)`` for large clusters, as JSON.

Figures: a 1,000-node cluster in 5 node groups planned from nothing (create), the same
cluster planned again once made (an empty plan: what ``apply`` of an unchanged file
costs), and a shrink of 500 nodes. Median and best of N runs, in milliseconds.

    .venv/bin/python bench/plan.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from flotte.planner import Plan, Recorded, RecordedNode, plan
from flotte.specs import ClusterSpec, NodeGroupSpec, default_groups, node_name


def spec(workers: int, per_group: int) -> ClusterSpec:
    extra = tuple(NodeGroupSpec(name=f"g{i}", node_count=per_group) for i in range(3))
    return ClusterSpec(name="big", driver="fake", nodegroups=(*default_groups(3, workers), *extra))


def made(s: ClusterSpec) -> Recorded:
    nodes = tuple(
        RecordedNode(node_name(s.name, g.name, i), g.name, g.node_role, i, "fake")
        for g in s.nodegroups
        for i in range(g.node_count)
    )
    return Recorded(s.name, exists=True, nodes=nodes, prepared=frozenset({"fake"}), swarm=True)


def timed(fn: Callable[[], Plan], runs: int) -> dict[str, float | int]:
    times = []
    steps = 0
    for _ in range(runs):
        started = time.perf_counter()
        steps = len(fn().steps)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(times), 2),
        "best_ms": round(min(times), 2),
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    big = spec(397, 200)  # 3 + 397 + 3 x 200 = 1,000 nodes in 5 node groups
    assert big.master_count + big.node_count == 1000 and len(big.nodegroups) == 5
    recorded = made(big)
    smaller = spec(397, 200).resized("g0", 0).resized("g1", 0).resized("g2", 100)
    out = {
        "nodes": 1000,
        "nodegroups": 5,
        "runs": args.runs,
        "create_from_nothing": timed(lambda: plan(Recorded("big"), big), args.runs),
        "unchanged_replan": timed(lambda: plan(recorded, big), args.runs),
        "shrink_by_500": timed(lambda: plan(recorded, smaller), args.runs),
        "target_ms": 50,
    }
    assert out["unchanged_replan"]["steps"] == 0
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
