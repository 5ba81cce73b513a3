"""Cluster health and self-healing, on every driver.

- ``check(svc, name)``: one round of reading (``health_probe``) and judging
  (``health_rules.assess``); records Magnum's ``health_status`` and
  ``health_status_reason`` (node -> reason) on the cluster, which ``cluster show``
  and flotte serve's API read.
- ``heal(svc, name)``: what the check found dead is replaced, and what only needs its
  engine restarted is restarted, through the planner's ``replace`` and ``restart``
  (``Clusters.change(locked=True)``): the one lifecycle, the plan shown first, every step
  journaled. Decided and run under the cluster's lock.
- ``watch_round(svc)``: one round over every cluster labelled
  ``auto_healing_enabled=true``: check each, heal each under the storm limits.
  ``flotte watch`` calls it every ``--interval`` seconds; a flotte serve worker may
  call it on its own schedule.

What healing did to a node is kept in the cluster's ``coe_data["healing"]`` (node ->
attempts, action, last reason) and follows the node that replaces it, so a node that
keeps dying is left UNHEALTHY instead of replaced forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flotte.errors import Busy, FlotteError, NotFound, UsageError
from flotte.planner import Action, Plan
from flotte.service.clusters import Clusters
from flotte.service.health_events import Notifier, count, log
from flotte.service.health_probe import PressureCache, Prober
from flotte.service.health_rules import ClusterHealth, Decision, History, assess, decide
from flotte.service.installation import Installation
from flotte.specs import ClusterSpec
from flotte.state.journal import phase_of
from flotte.state.status import (
    CREATE_FAILED,
    CREATE_IN_PROGRESS,
    DELETE_FAILED,
    DELETE_IN_PROGRESS,
    HEALTHY,
    UNFINISHED,
)

AUTO_LABEL = "auto_healing_enabled"
DEFAULT_INTERVAL = 5.0  # seconds between watch rounds
MIN_INTERVAL = 1.0
NOT_WATCHED = (CREATE_IN_PROGRESS, CREATE_FAILED, DELETE_IN_PROGRESS, DELETE_FAILED)

OnPlan = Callable[[Plan], None]
Clock = Callable[[], float]  # epoch seconds; tests pass their own to skip waits


def _quiet(p: Plan) -> None:
    return None


def auto_healing(spec: ClusterSpec) -> bool:
    """Magnum's label, on the cluster or (copied at create) its template."""
    return _true(spec.labels.get(AUTO_LABEL, ""))


def _true(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def history_of(coe_data: dict[str, Any]) -> dict[str, History]:
    found = coe_data.get("healing")
    if not isinstance(found, dict):
        return {}
    return {str(k): History.from_dict(v) for k, v in found.items()}


# -- check -----------------------------------------------------------------------------------
async def check(
    svc: Installation,
    name: str,
    *,
    pressure: bool = True,
    record: bool = True,
    cache: PressureCache | None = None,
    notifier: Notifier | None = None,
    clock: Clock = time.time,
) -> ClusterHealth:
    """Read and judge every node of cluster ``name``; record the verdict (``record``)."""
    cluster = svc.store.cluster(name)
    if cluster.spec.kind != "cluster":
        raise UsageError(f"{name!r} is not a cluster")
    nodes = svc.store.nodes(cluster=name)
    runner = Clusters(svc).runner(cluster, cluster.spec)
    prober = Prober(svc, runner.driver, pressure=pressure, cache=cache)
    started = time.monotonic()
    facts, swarm = await prober.gather(cluster, nodes)
    adopting = {d: runner.driver(d).capabilities.adopt_existing for d in {n.driver for n in nodes}}
    health = assess(cluster, nodes, facts, swarm, adopting, history_of(cluster.coe_data), clock())
    health.seconds = time.monotonic() - started
    health.calls = prober.calls.view()
    count("flotte_health_checks_total", status=health.status)
    if record:
        try:
            recorded = svc.store.record_health(
                name, health.status, health.reason, seen_status=cluster.status
            )
        except NotFound:
            return health  # deleted while we looked
        if not recorded:
            return health  # a change finished while we looked: its verdict is newer
        # the engines answered GET /info anyway: an upgraded engine shows at the next
        # round, and a steady cluster costs no write
        known = {n.name: n.engine_version for n in nodes}
        svc.store.set_engine_versions(
            {h.name: h.engine_version for h in health.nodes if h.engine_version != known[h.name]}
        )
        _announce_changes(svc, health, notifier or Notifier())
    return health


def _announce_changes(svc: Installation, h: ClusterHealth, notifier: Notifier) -> None:
    """A log line (and webhook event) per change of the cluster's or a node's health."""
    changed = {
        k: v for k, v in h.reason.items() if h.previous.get(k) != v and (h.previous or v != "ok")
    }
    gone = [k for k in h.previous if k not in h.reason]
    if h.status == h.previous_status and not changed and not gone:
        return
    if h.status != h.previous_status:
        count("flotte_health_changes_total", status=h.status)
    parts = [f"{k}: {v}" for k, v in changed.items()] + [f"{k}: no longer a node" for k in gone]
    line = f"cluster {h.name}: {h.status}"
    if h.status != h.previous_status:
        line = f"cluster {h.name}: {h.previous_status or '?'} -> {h.status}"
    if parts:
        line += " (" + "; ".join(parts) + ")"
    svc.store.journal(f"cluster:{h.name}", "health").write(
        f"health:{h.status}", phase_of(h.status == HEALTHY), "; ".join(parts)
    )
    notifier.emit(
        {
            "event": "health",
            "cluster": h.name,
            "from": h.previous_status,
            "to": h.status,
            "changed": changed,
            "gone": gone,
            "at": time.time(),
        },
        line,
    )


# -- heal ------------------------------------------------------------------------------------
@dataclass
class HealResult:
    before: ClusterHealth
    decision: Decision
    plan: Plan | None = None
    after: ClusterHealth | None = None
    replaced: dict[str, str] = field(default_factory=dict)  # old node -> new node

    def view(self) -> dict[str, Any]:
        return {
            "cluster": self.before.name,
            "before": self.before.view(),
            "decision": self.decision.view(),
            "plan": self.plan.to_dict() if self.plan else None,
            "replaced": self.replaced,
            "after": self.after.view() if self.after else None,
        }


async def heal(
    svc: Installation,
    name: str,
    *,
    dry_run: bool = False,
    on_plan: OnPlan = _quiet,
    auto: bool = False,
    health: ClusterHealth | None = None,
    notifier: Notifier | None = None,
    cache: PressureCache | None = None,
    clock: Clock = time.time,
) -> HealResult:
    """Restart or replace what ``check`` found broken (``auto``: under the storm limits).

    Raises Busy when another command holds the cluster's lock, and the use case's error
    when the heal ran and failed (the cluster's status_reason says why).
    """
    notifier = notifier or Notifier()
    before = health or await check(svc, name, cache=cache, notifier=notifier, clock=clock)
    cluster = svc.store.cluster(name)
    sizes = {g.name: g.node_count for g in cluster.spec.nodegroups}
    decision = decide(before, history_of(cluster.coe_data), clock(), auto=auto, group_sizes=sizes)
    result = HealResult(before, decision)
    if decision.deferred:
        count("flotte_heal_deferred_total", float(len(decision.deferred)))
    if not decision.acts:
        return result
    checked_at = clock() - before.seconds
    with svc.lock("cluster", name):
        cluster = svc.store.cluster(name)
        if cluster.status in UNFINISHED:
            raise UsageError(
                f"cluster {name!r} is {cluster.status}: healing only repairs a finished "
                f"cluster (re-run 'flotte cluster create {name}', or delete it)"
            )
        past = history_of(cluster.coe_data)
        present = {n.name for n in svc.store.nodes(cluster=name)}
        # Gone, or healed by another process since our check: not ours to touch now.
        fresh = [
            n for n in present if not any(t > checked_at for t in past.get(n, History()).attempts)
        ]
        decision.replace = [n for n in decision.replace if n in fresh]
        decision.restart = [n for n in decision.restart if n in fresh]
        if not decision.acts:
            return result
        await _run_heal(
            svc,
            result,
            past,
            auto=auto,
            dry_run=dry_run,
            on_plan=on_plan,
            notifier=notifier,
            now=clock(),
        )
    if not dry_run:
        result.after = await check(svc, name, cache=cache, notifier=notifier, clock=clock)
    return result


async def _run_heal(
    svc: Installation,
    result: HealResult,
    past: dict[str, History],
    *,
    auto: bool,
    dry_run: bool,
    on_plan: OnPlan,
    notifier: Notifier,
    now: float,
) -> None:
    """Record the attempt, run the planner's replace/restart, record what came of it.
    The caller holds the cluster's lock."""
    name, d, before = result.before.name, result.decision, result.before
    targets = {n: "replace" for n in d.replace} | {n: "restart" for n in d.restart}
    why = "; ".join(f"{a} {n} ({before.reason.get(n, '?')})" for n, a in targets.items())
    step = f"heal:{'auto' if auto else 'manual'}"
    journal = svc.store.journal(f"cluster:{name}", "health")
    if not dry_run:
        for n, action in targets.items():
            h = History() if not auto else past.get(n, History())  # by hand: a fresh start
            h.attempts = [*h.recent(now), now]
            h.action, h.last = action, before.reason.get(n, "")
            past[n] = h
        _save_history(svc, name, past)  # before running: a killed heal still counts
        await journal.intent(step)
    try:
        p = await Clusters(svc).change(
            name,
            lambda spec: spec,
            replace=d.replace,
            restart=d.restart,
            dry_run=dry_run,
            on_plan=on_plan,
            operation="heal",
            locked=True,
        )
    except (Busy, UsageError):
        raise
    except FlotteError as err:
        for n in targets:
            if n in past:
                past[n].last = f"heal failed: {err}"
        _save_history(svc, name, past)
        count("flotte_heal_failures_total")
        await journal.outcome(step, ok=False, detail=f"{why}: {err}")
        event = {"event": "heal", "cluster": name, "outcome": "failed", "targets": targets}
        notifier.emit(
            {**event, "error": str(err), "at": now},
            f"cluster {name}: heal failed ({why}): {err}",
            level=logging.WARNING,
        )
        raise
    result.plan = p
    if dry_run:
        return
    result.replaced = {
        s.note.removeprefix("replace ").strip(): str(s.node)
        for s in p.of(Action.CREATE)
        if s.note.startswith("replace ") and s.node
    }
    for old, new in result.replaced.items():
        past[new] = past.pop(old, History())  # the new node carries the lineage
    _save_history(svc, name, past)
    done = [f"replaced {o} by {n}" for o, n in result.replaced.items()]
    done += [f"restarted {n}" for n in d.restart]
    made = len(p.of(Action.CREATE)) - len(result.replaced)
    if made > 0:
        done.append(f"made {made} missing node(s)")
    text = "healed: " + (", ".join(done) or "converged")
    svc.store.set_cluster(name, status_reason=text)
    count("flotte_heal_replacements_total", float(len(d.replace)))
    count("flotte_heal_restarts_total", float(len(d.restart)))
    await journal.outcome(step, ok=True, detail=f"{why}: {text}" if why else text)
    notifier.emit(
        {
            "event": "heal",
            "cluster": name,
            "outcome": "done",
            "targets": targets,
            "replaced": result.replaced,
            "at": now,
        },
        f"cluster {name}: {text}",
    )


def _save_history(svc: Installation, name: str, past: dict[str, History]) -> None:
    """Write the healing history back, dropping nodes that no longer exist."""
    cluster = svc.store.cluster(name)
    present = {n.name for n in svc.store.nodes(cluster=name)}
    kept = {n: h.to_dict() for n, h in past.items() if n in present and h.attempts}
    svc.store.set_cluster(name, coe_data={**cluster.coe_data, "healing": kept})


# -- watch -----------------------------------------------------------------------------------
@dataclass
class WatchState:
    """What one process keeps between rounds: pressure figures and its notifier."""

    notifier: Notifier = field(default_factory=Notifier)
    cache: PressureCache = field(default_factory=PressureCache)


_states: weakref.WeakKeyDictionary[Any, WatchState] = weakref.WeakKeyDictionary()


def state_for(svc: Installation, notify: str | None = None) -> WatchState:
    found = _states.get(svc)
    if found is None or (notify and found.notifier.url != notify):
        found = WatchState(notifier=Notifier(notify))
        _states[svc] = found
    return found


def watched(svc: Installation, names: Iterable[str] = ()) -> list[str]:
    """The clusters a watch covers: those named (each must carry the label), or every
    cluster labelled ``auto_healing_enabled=true``."""
    wanted = list(names)
    out = []
    for name in wanted:
        cluster = svc.store.cluster(name)
        if not auto_healing(cluster.spec):
            raise UsageError(
                f"cluster {name!r} has no auto-healing: its labels lack {AUTO_LABEL}=true",
                hint=f"set the label on the cluster or its template (a spec file and "
                f"'flotte apply -f'), or heal it by hand: flotte cluster heal {name}",
            )
        out.append(name)
    if wanted:
        return out
    return [name for name, value in svc.store.cluster_labels(AUTO_LABEL).items() if _true(value)]


async def watch_round(
    svc: Installation,
    *,
    names: Iterable[str] = (),
    notify: str | None = None,
    clock: Clock = time.time,
) -> list[dict[str, Any]]:
    """One round over the watched clusters: check each, heal what the rules allow.

    Safe to call from several processes at once (a flotte serve worker per round): a
    cluster another process is healing is skipped (its lock is held), and a heal
    re-reads what it acts on under the lock. Returns one summary per cluster.
    """
    state = state_for(svc, notify)
    clusters = await asyncio.to_thread(watched, svc, names)

    async def one(name: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cluster": name}
        try:
            cluster = svc.store.cluster(name)
            if cluster.status in NOT_WATCHED:
                out["skipped"] = cluster.status
                return out
            h = await check(svc, name, cache=state.cache, notifier=state.notifier, clock=clock)
            out["health_status"] = h.status
            if h.status == HEALTHY:
                return out
            result = await heal(
                svc,
                name,
                auto=True,
                health=h,
                notifier=state.notifier,
                cache=state.cache,
                clock=clock,
            )
            out["decision"] = result.decision.view()
            if result.after is not None:
                out["health_status"] = result.after.status
        except Busy:
            out["skipped"] = "busy: another command holds its lock; next round"
        except NotFound:
            out["skipped"] = "deleted"
        except FlotteError as err:
            out["error"] = str(err)
        return out

    return list(await asyncio.gather(*(one(n) for n in clusters)))


def check_interval(interval: float, flag: str = "--interval") -> None:
    if not interval >= MIN_INTERVAL:
        raise UsageError(
            f"{flag} must be at least {MIN_INTERVAL:.0f} second (got {interval:g}): "
            "a check round itself takes up to a few seconds"
        )


async def watch(
    svc: Installation,
    *,
    names: Iterable[str] = (),
    interval: float = DEFAULT_INTERVAL,
    notify: str | None = None,
    rounds: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Rounds every ``interval`` seconds until ``stop`` is set (or ``rounds`` are done).

    ``flotte watch`` and flotte serve's workers run this. A round is never cut short:
    ``stop`` is looked at between rounds, so a replacement is never left half-done.
    What each round found and did goes to the ``flotte.health`` log.
    """
    check_interval(interval)
    names = list(names)
    stop = stop or asyncio.Event()
    state = state_for(svc, notify)
    seen: list[str] | None = None
    done = 0
    try:
        while (rounds is None or done < rounds) and not stop.is_set():
            started = time.monotonic()
            covered = await asyncio.to_thread(watched, svc, names)
            if covered != seen:
                what = ", ".join(covered) or f"none yet (label {AUTO_LABEL}=true)"
                log.info("watching every %g s: %s", interval, what)
                seen = covered
            for item in await watch_round(svc, names=names, notify=notify):
                _log_round_item(item)
            done += 1
            if rounds is not None and done >= rounds:
                break
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can drop a cancel
            # that lands as its wait ends (see jobs/embedded.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, interval - (time.monotonic() - started))):
                    await stop.wait()
    finally:
        await state.notifier.drain()


def _log_round_item(item: dict[str, Any]) -> None:
    """What a round did to one cluster, beyond the health events already logged."""
    name = item["cluster"]
    if "error" in item:
        log.warning("cluster %s: %s", name, item["error"])
    elif str(item.get("skipped", "")).startswith("busy"):
        log.info("cluster %s: %s", name, item["skipped"])
    for node, why in (item.get("decision") or {}).get("deferred", {}).items():
        if why.startswith("storm limit") or "quorum" in why:
            log.info("cluster %s: %s waits: %s", name, node, why)
