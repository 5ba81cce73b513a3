"""``flotte apply -f FILE`` and ``flotte cluster export``: a cluster as a file.

Applying creates the cluster when it does not exist and converges it when it does;
applying the same file twice changes nothing (the second plan is empty). Exporting
writes the file that recreates a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flotte.errors import ConfigError, UsageError
from flotte.planner import Plan
from flotte.provision import engine_config
from flotte.service.clusters import Clusters, OnPlan, _quiet
from flotte.service.resolve import check_driver, cluster_spec
from flotte.service.specfile import dump, load, validate
from flotte.specs import ClusterSpec
from flotte.state.status import CREATE_FAILED, CREATE_IN_PROGRESS


def desired_from_file(clusters: Clusters, path: Path) -> tuple[ClusterSpec, dict[str, Any]]:
    """The spec a file asks for (a template it names fills what it leaves out)."""
    data, spec, tree = load(path)
    secrets: dict[str, Any] = {}
    if spec is None:
        name = data.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{path}: name: Field required")
        try:
            base, secrets = cluster_spec(
                clusters.inst,
                name,
                template=str(data["template"]),
                driver=data.get("driver"),
                coe=data.get("coe"),
            )
        except UsageError as err:
            raise ConfigError(f"{path}: {err}") from None
        merged = base.model_dump(mode="json", exclude={"template_fields"})
        for key, value in data.items():
            if key in ("options", "labels") and isinstance(value, dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        spec = validate(path, merged, tree)
        spec = spec.model_copy(update={"template_fields": base.template_fields})
    try:
        check_driver(spec.driver)
        for group in spec.nodegroups:
            if group.driver:
                check_driver(group.driver)
        engine_config.validate(spec.engine, allow_insecure=spec.engine.insecure)
    except UsageError as err:
        raise ConfigError(f"{path}: {err}") from None
    return spec, secrets


async def apply(
    clusters: Clusters, path: Path, *, dry_run: bool = False, on_plan: OnPlan = _quiet
) -> Plan:
    spec, secrets = desired_from_file(clusters, path)
    current = clusters.store.find_cluster(spec.name)
    if spec.overflow is not None and (current is None or current.spec.driver == spec.driver):
        from flotte.service.overflow import Overflow

        if current is not None:
            spec = spec.model_copy(update={"template_fields": current.spec.template_fields})
        return await Overflow(clusters).run(spec, secrets, dry_run=dry_run, on_plan=on_plan)
    if current is None or current.status in (CREATE_IN_PROGRESS, CREATE_FAILED):
        return await clusters.create(spec, secrets, dry_run=dry_run, on_plan=on_plan)
    if spec.driver != current.spec.driver:
        raise UsageError(
            f"{path}: cluster {spec.name!r} uses the {current.spec.driver} driver; a file "
            f"cannot move it to {spec.driver}",
            hint="add a node group with its own driver instead",
        )

    def edit(old: ClusterSpec) -> ClusterSpec:
        return spec.model_copy(update={"template_fields": old.template_fields})

    return await clusters.change(spec.name, edit, secrets=secrets, dry_run=dry_run, on_plan=on_plan)


def export(clusters: Clusters, name: str) -> dict[str, Any]:
    return dump(clusters.store.cluster(name).spec)
