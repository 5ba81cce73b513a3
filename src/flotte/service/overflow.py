"""Overflow: a cluster's workers fill its node groups in order, spilling onto the next
provider when one refuses.

A group refuses by its ``max_node_count``, by its provider's quota (asked before
anything is made: the driver's ``check``), by refusing a create for quota or capacity
while the plan runs, or by the budget (``max_eur_day``, priced from the catalog). The
placement itself is the pure ``overflow_policy.place``; this use case measures the
limits, writes the counts into the desired spec, runs it through the one lifecycle
(``Clusters.create``/``change``) and, when a provider refuses a create halfway, takes
out the nodes it refused and plans again with that group capped at what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flotte.errors import PlanError, PlanFailed, QuotaExceeded, UsageError
from flotte.planner import Action, Plan, Recorded, plan
from flotte.service.clusters import Clusters, OnPlan, _quiet
from flotte.service.lifecycle import Runner
from flotte.service.overflow_policy import GroupLimit, Placement, place
from flotte.service.pricing import group_costs, node_price
from flotte.service.resolve import build
from flotte.specs import ClusterSpec, NodeGroupSpec, OverflowSpec
from flotte.state.status import CREATE_FAILED, CREATE_IN_PROGRESS

# A provider may refuse once per overflow group and per node: the loop always ends.
MAX_ROUNDS = 64


def refusal(err: BaseException) -> QuotaExceeded | None:
    """The quota or capacity refusal behind ``err``, if that is what it is."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, QuotaExceeded):
            return seen
        seen = seen.__cause__
    return None


class Overflow:
    """Overflow use cases over the cluster use cases."""

    def __init__(self, clusters: Clusters) -> None:
        self.clusters = clusters
        self.store = clusters.store

    # -- placement (no change made) -------------------------------------------------------
    def placed(
        self,
        spec: ClusterSpec,
        recorded: Recorded,
        caps: dict[str, tuple[int, str]],
        removing: Iterable[str] = (),
    ) -> tuple[ClusterSpec, Placement]:
        """``spec`` with the overflow groups' counts placed; ``caps`` holds what a
        provider refused (most nodes, why)."""
        over = spec.overflow
        if over is None:
            return spec, Placement({})
        named: dict[str, int] = {}
        gone = set(removing)
        for n in recorded.nodes:
            if n.name in gone:
                named[n.group] = named.get(n.group, 0) + 1
        limits = []
        for name in over.nodegroups:
            g = spec.group(name)
            cap, why = g.max_node_count, f"max_node_count {g.max_node_count}"
            if name in caps and (cap is None or caps[name][0] < cap):
                cap, why = caps[name]
            now = len(recorded.in_group(name)) if recorded.exists else 0
            limits.append(GroupLimit(name, now, cap, why, node_price(spec, g)))
        fixed = sum(
            r["eur_day"] or 0.0 for r in group_costs(spec) if r["nodegroup"] not in over.nodegroups
        )
        placement = place(
            over.node_count,
            limits,
            max_eur_day=over.max_eur_day,
            fixed_eur_day=fixed,
            removing=named,
        )
        for name, count in placement.counts.items():
            group = spec.group(name)
            if group.node_count != count:
                data = {**group.model_dump(), "node_count": count}
                spec = spec.with_group(build(NodeGroupSpec, data, f"node group {name}"))
        return spec, placement

    async def _prechecked(
        self,
        spec: ClusterSpec,
        recorded: Recorded,
        caps: dict[str, tuple[int, str]],
        removing: Iterable[str],
        secrets: dict[str, Any] | None,
    ) -> tuple[ClusterSpec, Placement]:
        """Placement after each group's driver checked its quota for its new nodes; a
        group that cannot hold them is capped one node lower and placement runs again."""
        runner = self.clusters.runner(self.store.find_cluster(spec.name), spec)
        runner.secrets.update(secrets or {})
        for _ in range(MAX_ROUNDS):
            placed, placement = self.placed(spec, recorded, caps, removing)
            for name in placement.counts:
                err = await self._check(runner, recorded, placed, name, removing)
                if err is None:
                    continue
                # The most this group's provider accepts: fewer new nodes until it agrees.
                why, count = f"quota: {err}", placed.group(name).node_count
                while count > 0 and err is not None:
                    count -= 1
                    fewer = placed.resized(name, count)
                    err = await self._check(runner, recorded, fewer, name, removing)
                caps[name] = (count, why)
                break
            else:
                return placed, placement
        raise PlanError(f"overflow of {spec.name}: the providers' quotas kept changing")

    async def _check(
        self,
        runner: Runner,
        recorded: Recorded,
        spec: ClusterSpec,
        group: str,
        removing: Iterable[str],
    ) -> QuotaExceeded | None:
        """The driver of ``group`` checks the nodes ``spec`` would add to it, with those
        it adds to other groups of the same driver instance (one project's quota: a new
        cluster's managers count too)."""
        p = plan(recorded, spec, remove=removing)
        steps = [s for s in p.of(Action.CREATE) if s.group == group and s.driver]
        if not steps:
            return None
        runner.spec = spec
        driver = str(steps[0].driver)
        instance = runner.driver(driver, group)
        others = sorted(
            {
                s.group
                for s in p.of(Action.CREATE)
                if s.driver == driver
                and s.group
                and s.group != group
                and runner.driver(driver, s.group) is instance
            }
        )
        try:
            await instance.check(runner.group_spec(driver, p, (group, *others)))
        except QuotaExceeded as err:
            return err
        return None

    # -- running --------------------------------------------------------------------------
    async def run(
        self,
        spec: ClusterSpec,
        secrets: dict[str, Any] | None = None,
        *,
        remove: Iterable[str] = (),
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Plan:
        """Create or converge ``spec`` with its overflow groups filled in order."""
        if spec.overflow is None:
            raise UsageError(f"cluster {spec.name!r} has no overflow policy")
        clusters = self.clusters
        caps: dict[str, tuple[int, str]] = {}
        removing = list(remove)
        for _ in range(MAX_ROUNDS):
            existing = self.store.find_cluster(spec.name)
            recorded = clusters.recorded(spec.name)
            placed, placement = await self._prechecked(spec, recorded, caps, removing, secrets)
            creating = existing is None or existing.status in (CREATE_IN_PROGRESS, CREATE_FAILED)
            try:
                if creating:
                    if existing is not None:
                        self.store.set_desired(placed)
                    p = await clusters.create(
                        placed,
                        secrets,
                        rollback=False,
                        dry_run=dry_run,
                        on_plan=on_plan,
                        remove=removing,
                    )
                else:

                    def edit(_old: ClusterSpec, new: ClusterSpec = placed) -> ClusterSpec:
                        return new

                    p = await clusters.change(
                        spec.name,
                        edit,
                        remove=removing,
                        secrets=secrets,
                        rollback=False,
                        dry_run=dry_run,
                        on_plan=on_plan,
                    )
            except PlanFailed as failure:
                refused = self._refused(failure)
                if not refused or len(refused) < len(failure.errors):
                    await self._give_up(spec.name, creating)
                    raise
                self._cap(spec.name, refused, caps)
                # Take out what the provider refused (and what was named and is still
                # there), then place again with that group capped.
                removing = sorted(
                    set(self._half_made(spec.name))
                    | {n for n in removing if self.store.find_node(n)}
                )
                continue
            if not dry_run:
                self._record_reasons(placed, placement, caps)
            return p
        raise PlanError(f"overflow of {spec.name} did not settle after {MAX_ROUNDS} rounds")

    def _refused(self, failure: PlanFailed) -> dict[str, QuotaExceeded]:
        out: dict[str, QuotaExceeded] = {}
        for step, err in failure.errors.items():
            why = refusal(err)
            if step.startswith("create:") and why is not None:
                out[step.removeprefix("create:")] = why
        return out

    def _half_made(self, cluster: str) -> list[str]:
        """Nodes whose create never finished (the provider refused them)."""
        return [n.name for n in self.store.nodes(cluster=cluster) if n.record is None]

    def _cap(self, cluster: str, refused: dict[str, QuotaExceeded], caps: dict[str, Any]) -> None:
        nodes = self.store.nodes(cluster=cluster)
        for name, err in refused.items():
            group = next((n.group for n in nodes if n.name == name), None)
            if group is None:
                continue
            made = sum(1 for n in nodes if n.group == group and n.record is not None)
            caps[group] = (made, f"refused while creating {name}: {err}")

    async def _give_up(self, cluster: str, creating: bool) -> None:
        """A failure that is not a refusal: a create is rolled back whole (nothing
        leaks); a change stays UPDATE_FAILED and a re-run converges."""
        if creating and self.store.find_cluster(cluster) is not None:
            await self.clusters.delete(cluster)

    def _record_reasons(
        self, spec: ClusterSpec, placement: Placement, caps: dict[str, tuple[int, str]]
    ) -> None:
        """``cluster show`` says where the nodes went and why, per node group."""
        over = spec.overflow
        if over is None or self.store.find_cluster(spec.name) is None:
            return
        cluster = self.store.cluster(spec.name)
        parts = []
        for name in over.nodegroups:
            count = placement.counts.get(name, 0)
            why = placement.reasons.get(name) or "unchanged"
            if name in caps:
                why = f"{why}; {caps[name][1]}"
            parts.append(f"{name} {count}")
            self.store.set_groups_status(
                spec.name, cluster.status, f"overflow: {count} node(s); {why}", groups=[name]
            )
        cost = f", {placement.eur_day:.2f} EUR/day" if placement.eur_day is not None else ""
        reason = f"{cluster.status_reason}; overflow: {', '.join(parts)}{cost}".lstrip("; ")
        self.store.set_cluster(spec.name, status_reason=reason)

    # -- entry points -----------------------------------------------------------------------
    async def resize(
        self,
        name: str,
        node_count: int,
        groups: Iterable[str],
        *,
        max_eur_day: float | None = None,
        nodes_to_remove: Iterable[str] = (),
        dry_run: bool = False,
        on_plan: OnPlan = _quiet,
    ) -> Plan:
        """``cluster resize NAME --node-count N --overflow a,b,c [--max-eur-day X]``."""
        current = self.store.cluster(name).spec
        order = tuple(groups) or (current.overflow.nodegroups if current.overflow else ())
        if not order:
            raise UsageError(
                f"cluster {name!r} has no overflow policy: give --overflow GROUP,GROUP"
            )
        budget = max_eur_day
        if budget is None and current.overflow is not None and not tuple(groups):
            budget = current.overflow.max_eur_day
        data = {"nodegroups": order, "node_count": node_count, "max_eur_day": budget}
        overflow = build(OverflowSpec, data, "--overflow")
        spec = build(
            ClusterSpec,
            {**current.model_dump(), "overflow": overflow.model_dump()},
            "--overflow",
        )
        members = {n.name for n in self.store.nodes(cluster=name)}
        for node in nodes_to_remove:
            if node not in members:
                raise UsageError(f"node {node!r} is not in cluster {name!r}")
        return await self.run(spec, remove=nodes_to_remove, dry_run=dry_run, on_plan=on_plan)
