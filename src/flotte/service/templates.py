"""Cluster template use cases (Magnum's ClusterTemplate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flotte.models import check_name
from flotte.service import options as opts
from flotte.service.installation import Installation
from flotte.service.resolve import build, check_driver
from flotte.specs import TemplateSpec
from flotte.state.records import TemplateRecord


class Templates:
    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.store = inst.store

    def create(self, name: str, fields: Mapping[str, Any]) -> TemplateRecord:
        """Record a template; secret ``driver_options`` go to a 0600 file, not the row."""
        check_name("template", name)
        given = {k: v for k, v in fields.items() if v is not None}
        spec = build(TemplateSpec, given, f"template {name}")
        check_driver(spec.driver)
        opts.check_known(spec.driver, spec.driver_options, f"template {name}")
        public, secret = opts.split([spec.driver], spec.driver_options)
        spec = build(
            TemplateSpec, {**spec.model_dump(), "driver_options": public}, f"template {name}"
        )
        record = self.store.add_template(name, spec)  # two at once: one gets "exists"
        self.inst.options.save("templates", name, secret)
        return record

    def all(self) -> list[TemplateRecord]:
        return self.store.templates()

    def get(self, name: str) -> TemplateRecord:
        return self.store.template(name)

    def secret_keys(self, name: str) -> list[str]:
        """Names (never values) of the secret options a template keeps apart."""
        return sorted(self.inst.options.load("templates", name))

    def delete(self, name: str) -> None:
        self.store.delete_template(name)
        self.inst.options.forget("templates", name)
