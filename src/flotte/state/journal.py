"""The executor's journal in the state database: intent before each step, outcome after."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from flotte.state.tables import JournalEntry


class StoreJournal:
    """The executor's journal, written to the ``journal`` table one row per event."""

    def __init__(
        self,
        session: Callable[[], AbstractContextManager[Session]],
        scope: str,
        operation: str,
    ) -> None:
        self.session, self.scope, self.operation = session, scope, operation

    def _write(self, step: str, phase: str, detail: str = "") -> None:
        with self.session() as s:
            s.add(
                JournalEntry(
                    scope=self.scope,
                    operation=self.operation,
                    step=step,
                    phase=phase,
                    detail=detail[:2000],
                )
            )

    def intent(self, step: str) -> None:
        self._write(step, "intent")

    def outcome(self, step: str, *, ok: bool, detail: str = "") -> None:
        self._write(step, "done" if ok else "failed", detail)
