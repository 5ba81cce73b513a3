"""The templates part of the store (``Store`` inherits it): typed records in and out."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flotte.errors import AlreadyExists, FlotteError, NotFound
from flotte.specs import TemplateSpec
from flotte.state.records import TemplateRecord
from flotte.state.rows import template_record
from flotte.state.tables import Cluster, Template


class TemplateRows:
    """Templates: what ``flotte template`` and flotte serve's cluster templates record."""

    def session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Store's, one transaction per call

    def add_template(
        self,
        name: str,
        spec: TemplateSpec,
        project: str | None = None,
        *,
        display_name: str | None = None,
        magnum: dict[str, Any] | None = None,
    ) -> TemplateRecord:
        """Record a template; ``project``, ``display_name``, ``magnum``: flotte serve's."""
        row = Template(
            name=name,
            uuid=str(uuid.uuid4()),
            spec=spec.model_dump(mode="json"),
            project=project,
            display_name=display_name,
            magnum=magnum,
        )
        try:
            with self.session() as s:
                if s.get(Template, name) is not None:
                    raise AlreadyExists(f"template {name!r} already exists")
                s.add(row)
        except IntegrityError as err:  # another command made it between our read and write
            raise AlreadyExists(f"template {name!r} already exists") from err
        return template_record(row)

    def template(self, name: str) -> TemplateRecord:
        with self.session() as s:
            row = s.get(Template, name)
            if row is None:
                raise NotFound(f"template {name!r} not found", hint="see 'flotte template list'")
            return template_record(row)

    def templates(self) -> list[TemplateRecord]:
        with self.session() as s:
            return [template_record(r) for r in s.scalars(select(Template).order_by(Template.name))]

    def delete_template(self, name: str) -> None:
        with self.session() as s:
            if s.get(Template, name) is None:
                raise NotFound(f"template {name!r} not found")
            used = s.scalars(select(Cluster.name).where(Cluster.template == name)).first()
            if used:
                raise FlotteError(
                    f"template {name!r} is used by cluster {used!r}: delete the cluster first"
                )
            s.delete(s.get(Template, name))
