"""From what a user typed (a template name, flags, labels, hosts) to a ``ClusterSpec``.

Everything is validated here, before anything is recorded or made: one clear line for
the first problem. Secret options are split off and returned apart, never put in the
spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flotte import drivers
from flotte.errors import UsageError
from flotte.models import EngineOptions
from flotte.provision import engine_config
from flotte.service import options as opts
from flotte.service.installation import Installation
from flotte.specs import (
    MASTER_GROUP,
    WORKER_GROUP,
    ClusterSpec,
    NodeGroupSpec,
    TemplateSpec,
    validation_message,
)

M = TypeVar("M", bound=BaseModel)

# Magnum template fields that reach a driver option when the driver declares one.
FIELDS = (
    "image_id",
    "flavor_id",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "dns_nameserver",
    "docker_volume_size",
    "server_type",
    "floating_ip_enabled",
)


def build(model: type[M], data: Mapping[str, Any], where: str = "") -> M:
    """Validate ``data`` as ``model``; a problem is one UsageError line."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        prefix = f"{where}: " if where else ""
        raise UsageError(prefix + validation_message(err)) from None


def check_driver(name: str) -> None:
    drivers.get(name)  # unknown driver -> one clear line


def template_options(template: TemplateSpec, flags: Mapping[str, Any]) -> dict[str, Any]:
    """Driver options of a cluster: template fields, its driver_options, then flags."""
    keys = opts.field_keys(template.driver)
    out: dict[str, Any] = {}
    for field_name in FIELDS:
        value = getattr(template, field_name)
        key = keys.get(field_name)
        default = TemplateSpec.model_fields[field_name].default
        if key and value is not None and value != default:
            out[key] = value
    out.update(template.driver_options)
    out.update(flags)
    return out


def merge_engine(base: EngineOptions, extra: EngineOptions | None) -> EngineOptions:
    if extra is None:
        return base
    return EngineOptions(
        opts=base.opts + extra.opts,
        labels=base.labels + extra.labels,
        insecure_registries=base.insecure_registries + extra.insecure_registries,
        registry_mirrors=base.registry_mirrors + extra.registry_mirrors,
        env=base.env + extra.env,
        storage_driver=extra.storage_driver or base.storage_driver,
        tls_sans=base.tls_sans + extra.tls_sans,
        insecure=base.insecure or extra.insecure,
    )


def cluster_spec(
    inst: Installation,
    name: str,
    *,
    template: str | None = None,
    driver: str | None = None,
    coe: str | None = None,
    master_count: int | None = None,
    node_count: int | None = None,
    flags: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    engine: EngineOptions | None = None,
    timeout_min: float = 60.0,
    no_provision: bool = False,
    hosts: Sequence[str] = (),
) -> tuple[ClusterSpec, dict[str, Any]]:
    """The cluster's spec and its secret options, from a template and flags."""
    secrets: dict[str, Any] = {}
    if template:
        base = inst.store.template(template).spec
        secrets.update(inst.options.load("templates", template))
    elif not driver:
        raise UsageError("give --template NAME, or --driver (and --coe) to create without one")
    else:
        base = TemplateSpec(driver=driver)
    changes: dict[str, Any] = {}
    if driver:
        changes["driver"] = driver
    if coe:
        changes["coe"] = coe
    if changes:
        base = build(TemplateSpec, {**base.model_dump(), **changes})
    check_driver(base.driver)
    if not math.isfinite(timeout_min) or timeout_min <= 0:
        raise UsageError(f"--timeout must be a positive number of minutes (got {timeout_min})")
    masters = master_count if master_count is not None else base.master_count
    workers = node_count if node_count is not None else base.node_count
    if masters < 1:
        raise UsageError(f"--master-count must be at least 1 (got {masters})")
    if workers < 0:
        raise UsageError(f"--node-count cannot be negative (got {workers})")
    given = opts.only([base.driver], flags or {})
    public, secret = opts.split([base.driver], template_options(base, given))
    secrets.update(secret)
    eng = merge_engine(base.engine(labels), engine)
    engine_config.validate(eng, allow_insecure=eng.insecure)
    if hosts and len(hosts) < masters + workers:
        raise UsageError(
            f"{len(hosts)} host(s) given for {masters} manager(s) and {workers} worker(s): "
            "give one host per node"
        )
    master_flavor = base.master_flavor_id
    groups = (
        build(
            NodeGroupSpec,
            {
                "name": MASTER_GROUP,
                "role": "master",
                "node_count": masters,
                "min_node_count": 1,
                "hosts": tuple(hosts[:masters]),
                "flavor_id": master_flavor,
            },
            "--master-count",
        ),
        build(
            NodeGroupSpec,
            {
                "name": WORKER_GROUP,
                "role": "worker",
                "node_count": workers,
                "hosts": tuple(hosts[masters:]),
            },
            "--node-count",
        ),
    )
    spec = build(
        ClusterSpec,
        {
            "name": name,
            "template": template,
            "coe": base.coe,
            "driver": base.driver,
            "options": public,
            "engine": eng,
            "labels": {**base.labels, **(labels or {})},
            "create_timeout": timeout_min,
            "no_provision": no_provision,
            "nodegroups": groups,
            "template_fields": base.model_dump(mode="json", exclude={"driver_options", "labels"}),
        },
    )
    return spec, secrets
