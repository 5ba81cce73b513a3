"""A randomized fault campaign against one driver; prints one JSON object.

Each run (seeded: run ``i`` uses seed ``S + i``, replayed alone with ``--seed S+i
--runs 1``) gets a new FLOTTE_HOME with secrets planted in the standard places (an
openrc and AWS variables in the environment, an AWS credentials file for ec2, the
project's own password for openstack), picks an operation (cluster create, resize up or
down, node group create/update/delete, cluster delete, machine create/rm) and a fault
of its driver (SIGKILL of the flotte process at a random time; for ec2 and openstack
429, 500, 503, lost answers, connection resets or latency from the fault proxy in front
of moto, of devcloud's Nova and Neutron; for the fake cloud a failing node, a quota, latency; for local a node's
dockerd killed; for ssh the SSH connections dropped). It runs what the operation needs
first, then the operation under the fault, then, when that did not succeed, the same
command again, and checks with clients independent of flotte:

- ``not_converged``: after the re-run, the cluster's node groups (or the machine) are
  what was asked, and the nodes the cloud holds are exactly those flotte records;
- ``stuck``: a cluster, node group or machine still ``*_IN_PROGRESS`` after the re-run;
- ``leaks``: after deleting what the run made, anything of the installation remains;
- ``integrity``: ``PRAGMA integrity_check`` of the state database is not ``ok``;
- ``secret_sightings``: a planted secret in a file of FLOTTE_HOME (other than a 0600 file
  under ``secrets/``), in the database's dump, or in any output (``--debug`` half the
  time);
- ``tracebacks``: a Python traceback printed without ``--debug``.

A run with any of these is a failure; its seed, operation, fault and first lines of
evidence are listed under ``failures``.

Usage: ``.venv/bin/python bench/faults.py --driver fake --runs 200 --seed 1``
(``--budget SECONDS`` stops starting new runs after that long).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_checks import (
    acceptable_rerun,
    installation_of,
    integrity,
    secret_sightings,
    stuck,
    tracebacks,
)
from fault_cli import CLI, Result
from fault_openstack import OpenStackTarget
from fault_ops import Op, pick_op
from fault_targets import KILL, TARGETS, Target

DRIVERS: dict[str, type[Target]] = {**TARGETS, "openstack": OpenStackTarget}

CHECKS = ("not_converged", "stuck", "leaks", "integrity", "secret_sightings", "tracebacks")


def faulted(cli: CLI, target: Target, argv: list[str], env: dict[str, str], armed: Any) -> Result:
    """Run ``argv`` while ``armed`` hits it; the result of the (maybe killed) command."""
    child = cli.spawn(argv, env)
    try:
        if armed.kill_at is not None:
            res = cli.wait(child, armed.kill_at, kill_late=False)
            if res.rc is None:  # still running: this is the moment
                return cli.kill(child)
            return res
        if armed.during_at is not None and armed.during is not None:
            res = cli.wait(child, armed.during_at, kill_late=False)
            if res.rc is not None:
                return res
            armed.during()
        return cli.wait(child, 600)
    finally:
        target.disarm()


def converged(cli: CLI, target: Target, op: Op, env: dict[str, str], inst: str) -> list[str]:
    """What differs from the op's desired state, seen by flotte and by the cloud."""
    key = "flotte:cluster" if op.kind == "cluster" else "flotte:machine"
    cloud = {
        target.node_name(r, Path(env["FLOTTE_HOME"]))
        for r in target.inventory(inst)
        if r.kind == target.node_kind and r.tags.get(key) == op.scope
    }
    if op.desired is None:
        return [f"{op.kind} {op.scope}: still in the cloud: {sorted(cloud)}"] if cloud else []
    if op.kind == "machine":
        return [] if cloud == {op.scope} else [f"machine {op.scope}: cloud holds {sorted(cloud)}"]
    show = cli.run(["cluster", "show", op.scope, "-f", "json"], env)
    if show.rc != 0:
        return [f"cluster show {op.scope}: {show.err.strip()[-200:]}"]
    data = json.loads(show.out)
    problems = []
    groups = {g["name"]: g["node_count"] for g in data["nodegroups"]}
    if groups != op.desired:
        problems.append(f"node groups {groups}, wanted {op.desired}")
    if not str(data["status"]).endswith("_COMPLETE"):
        problems.append(f"status {data['status']}: {data.get('status_reason', '')[:200]}")
    recorded = {n["name"] for n in data["nodes"]}
    if cloud != recorded or len(recorded) != sum(op.desired.values()):
        problems.append(f"cloud holds {sorted(cloud)}, flotte records {sorted(recorded)}")
    return problems


def teardown(
    cli: CLI, target: Target, op: Op, env: dict[str, str], inst: str
) -> tuple[list[str], list[tuple[list[str], Result]]]:
    """Delete what the run made (no fault); anything of the installation left is a leak.
    Also the delete commands' results (their outputs are checked like the others)."""
    outputs = [(argv, cli.run(argv, env)) for argv in op.teardown]
    left = [f"{r.kind} {r.name}" for r in target.inventory(inst)] if inst else []
    if left:
        errors = [r.err.strip()[-300:] for _, r in outputs if r.rc != 0]
        return [f"left after delete: {left[:8]} ({'; '.join(errors)})"], outputs
    return [], outputs


def one_run(cli: CLI, target: Target, seed: int, base: Path, token: str) -> dict[str, Any]:
    rng = random.Random(seed)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run{seed}-", dir=base))
    home = run_dir / "home"
    secrets = target.secrets(f"{token}{seed}")
    env = {
        **{k: v for k, v in BASE_ENV.items()},
        # its own generator: drawing here must not change the op and fault of a seed
        **target.env(home, secrets, random.Random(f"env-{seed}")),
        "FLOTTE_HOME": str(home),
    }
    op = pick_op(rng, target, f"fz{token}{seed}")
    fault = rng.choice(target.faults)
    debug = rng.random() < 0.5
    started = time.monotonic()
    phases: dict[str, float] = {}  # seconds per phase: where a run's time goes

    def lap(phase: str) -> None:
        phases[phase] = round(time.monotonic() - started - sum(phases.values()), 1)

    found: dict[str, list[str]] = {c: [] for c in CHECKS}
    results: list[tuple[list[str], Result]] = []
    for argv in op.setup:
        res = cli.run(argv, env)
        results.append((argv, res))
        if res.rc != 0:
            found["not_converged"].append(f"setup {argv[:3]} failed: {res.err.strip()[-300:]}")
    lap("setup")
    target.op = op.name
    armed = target.arm(fault, rng, op.creates, op.cluster)
    flags = armed.flags if op.creates else []
    argv = (["--debug"] if debug else []) + op.command + flags
    injected = target.injected()
    res = faulted(cli, target, argv, env, armed)
    injected = target.injected() - injected
    results.append((argv, res))
    first_rc = res.rc
    lap("faulted")
    if res.rc != 0 and not found["not_converged"]:
        rerun = cli.run(op.command, env)
        results.append((op.command, rerun))
        if rerun.rc != 0 and not acceptable_rerun(rerun):
            found["not_converged"].append(f"re-run exited {rerun.rc}: {rerun.err.strip()[-300:]}")
    lap("rerun")
    inst = installation_of(home)
    if not found["not_converged"]:
        found["not_converged"] += converged(cli, target, op, env, inst)
    found["stuck"] = stuck(home)
    found["integrity"] = integrity(home)
    lap("check")
    found["leaks"], deleted = teardown(cli, target, op, env, inst)
    results += deleted
    found["integrity"] += integrity(home)
    target.cleanup(inst)
    lap("teardown")
    found["secret_sightings"] = secret_sightings(home, secrets, [r for _, r in results])
    found["tracebacks"] = tracebacks(results)
    outcome = {
        "seed": seed,
        "op": op.name,
        "fault": armed.name,
        "debug": debug,
        "faulted_rc": first_rc,
        "injected": injected,
        "seconds": round(time.monotonic() - started, 2),
        "phases": phases,
        **{k: v[:3] for k, v in found.items() if v},
    }
    if not any(found.values()):
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        outcome["home"] = str(home)
    return outcome


BASE_ENV: dict[str, str] = {}


def campaign(
    driver: str, runs: int, seed: int, budget: float, keep: Path | None, jobs: int = 1
) -> dict[str, Any]:
    import os

    if DRIVERS[driver].exclusive and jobs > 1:
        raise SystemExit(f"--driver {driver} runs one run at a time: --jobs 1")
    BASE_ENV.update(
        {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "AWS_", "FLOTTE_"))}
    )
    BASE_ENV.update(
        {"NO_COLOR": "1", "COLUMNS": "200", "FLOTTE_CHECKIP_URL": "http://127.0.0.1:9/"}
    )
    BASE_ENV.pop("DOCKER_HOST", None)
    base = Path(tempfile.mkdtemp(prefix=f"faults-{driver}-", dir=keep))
    token = uuid.uuid4().hex[:4]
    started = time.monotonic()
    seeds = iter(range(seed, seed + runs))
    lock = threading.Lock()
    outcomes: list[dict[str, Any]] = []

    def worker(index: int) -> None:
        # each worker has its own cloud end (a proxy of its own) and its own zygote
        workdir = base / f"w{index}"
        workdir.mkdir()
        target = DRIVERS[driver](workdir)
        cli = CLI(workdir, target.preload)
        try:
            while not (budget and time.monotonic() - started > budget):
                with lock:
                    run_seed = next(seeds, None)
                if run_seed is None:
                    return
                since = time.monotonic()
                try:
                    with target.run_guard():
                        outcome = one_run(cli, target, run_seed, workdir, token)
                except Exception as err:  # the harness or the peer, not flotte: go on
                    traceback.print_exc()
                    outcome = {"seed": run_seed, "harness_error": repr(err)[:300]}
                    target.recover()
                outage = target.outage_since(since)
                if outage:
                    outcome["peer_outage"] = outage
                with lock:
                    outcomes.append(outcome)
        finally:
            cli.close()
            target.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes.sort(key=lambda o: int(o["seed"]))
    # A run the peer itself failed (devcloud restarted by another session) or the
    # harness could not finish says nothing of flotte: listed apart, not counted.
    excluded = [o for o in outcomes if "peer_outage" in o or "harness_error" in o]
    outcomes = [o for o in outcomes if o not in excluded]
    failures = [o for o in outcomes if any(c in o for c in CHECKS)]
    tally = {c: sum(1 for o in outcomes if c in o) for c in CHECKS}
    return {
        "driver": driver,
        "runs": len(outcomes),
        "seed": seed,
        "jobs": jobs,
        "leaks": tally["leaks"],
        "stuck": tally["stuck"],
        "secret_sightings": tally["secret_sightings"],
        "not_converged": tally["not_converged"],
        "integrity_failures": tally["integrity"],
        "tracebacks": tally["tracebacks"],
        "failed_seeds": [o["seed"] for o in failures],
        "failures": failures[:20],
        "excluded": len(excluded),
        "excluded_runs": excluded[:20],
        "by_op": _count(outcomes, "op"),
        "by_fault": _count(outcomes, "fault"),
        "killed_runs": sum(1 for o in outcomes if o["faulted_rc"] == -9),
        "api_faults_injected": sum(o["injected"] for o in outcomes),
        "runs_with_api_faults_injected": sum(1 for o in outcomes if o["injected"]),
        "seconds": round(time.monotonic() - started, 1),
        "seconds_per_run_median": _median([o["seconds"] for o in outcomes]),
        "seconds_per_run_max": max((o["seconds"] for o in outcomes), default=0.0),
        "phase_seconds_median": {
            phase: _median([o["phases"].get(phase, 0.0) for o in outcomes])
            for phase in ("setup", "faulted", "rerun", "check", "teardown")
        },
    }


def _count(outcomes: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        out[o[key]] = out.get(o[key], 0) + 1
    return dict(sorted(out.items()))


def _median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=sorted(DRIVERS), required=True)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.0, help="seconds; 0: no limit")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (fake, ec2)")
    parser.add_argument("--keep", type=Path, default=None, help="where run homes go")
    args = parser.parse_args()
    print(
        json.dumps(
            campaign(args.driver, args.runs, args.seed, args.budget, args.keep, args.jobs), indent=2
        )
    )


if __name__ == "__main__":
    main()

__all__ = ["KILL", "campaign"]
