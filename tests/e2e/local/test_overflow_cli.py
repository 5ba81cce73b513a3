"""``flotte cluster resize --overflow`` from the command line, on the fake driver (two
fake clouds): the plan shows where each node goes and what it costs, bad input is one
line with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from test_bad_input import assert_one_line

from fixtures.local import Flotte


def test_overflow_cli_plan_run_show_and_bad_input(flotte: Flotte, tmp_path: Path) -> None:
    env = {"FLOTTE_FAKE_DIR": str(tmp_path / "lab")}
    flotte.env.update(env)
    flotte(
        "cluster", "create", "o", "--driver", "fake", "--node-count", "0", "--no-provision",
        "--fake-quota", "3",
    )  # fmt: skip
    flotte(
        "cluster", "nodegroup", "create", "o", "partner", "--node-count", "0",
        "--fake-dir", str(tmp_path / "partner"), "--labels", "provider=aws",
    )  # fmt: skip

    def state() -> object:
        return json.loads(flotte("cluster", "show", "o", "-f", "json").stdout)["nodes"]

    before = state()
    cases = [
        (("--overflow", "default-worker,nope"), ("'nope'", "does not exist")),
        (("--overflow", "default-master"), ("master group",)),
        (("--overflow", "default-worker,partner", "--max-eur-day", "0.01"), ("partner",)),
        (("--overflow", "default-worker", "--nodegroup", "partner"), ("--overflow",)),
        (("--overflow", ","), ("--overflow needs",)),
    ]
    for extra, words in cases:
        res = flotte("cluster", "resize", "o", "--node-count", "4", *extra, check=False)
        assert_one_line(res, *words)
    assert state() == before

    dry = flotte(
        "cluster", "resize", "o", "--node-count", "4", "--overflow", "default-worker,partner",
        "--dry-run", "-o", "json",
    )  # fmt: skip
    plan = json.loads(dry.stdout)
    where = sorted(s["group"] for s in plan["steps"] if s["action"] == "create")
    assert where == ["default-worker"] * 2 + ["partner"] * 2
    assert any(r["nodegroup"] == "partner" and r["eur_day"] for r in plan["cost"]["nodegroups"])
    table = flotte(
        "cluster", "resize", "o", "--node-count", "4", "--overflow", "default-worker,partner",
        "--dry-run",
    ).stdout  # fmt: skip
    assert "overflow (filled in this order): default-worker 2, partner 2" in table
    assert state() == before

    flotte("cluster", "resize", "o", "--node-count", "4", "--overflow", "default-worker,partner")
    shown = json.loads(flotte("cluster", "show", "o", "-f", "json").stdout)
    groups = {g["name"]: g for g in shown["nodegroups"]}
    assert "quota" in groups["default-worker"]["status_reason"]
    assert groups["partner"]["status_reason"].startswith("overflow: 2 node(s)")
    assert sorted(n["nodegroup"] for n in shown["nodes"]).count("partner") == 2
    flotte("cluster", "resize", "o", "--node-count", "2")  # the policy is remembered
    shown = json.loads(flotte("cluster", "show", "o", "-f", "json").stdout)
    assert [n for n in shown["nodes"] if n["nodegroup"] == "partner"] == []
    flotte("cluster", "delete", "o")
