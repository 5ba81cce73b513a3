"""The executor's journal in the state database: intent before each step, outcome after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from flotte.state.tables import JournalEntry


class StoreJournal:
    """The executor's journal, written to the ``journal`` table one row per event.

    ``intent`` and ``outcome`` share their transaction with the other writes of the
    same moment (``group_commit``) and return once it is committed; ``write`` commits
    at once, for callers outside an event loop.
    """

    def __init__(
        self,
        session: Callable[[], AbstractContextManager[Session]],
        soon: Callable[[Callable[[Session], Any]], Awaitable[Any]],
        scope: str,
        operation: str,
    ) -> None:
        self.session, self.soon = session, soon
        self.scope, self.operation = scope, operation

    def _add(self, s: Session, step: str, phase: str, detail: str) -> None:
        s.add(
            JournalEntry(
                scope=self.scope,
                operation=self.operation,
                step=step,
                phase=phase,
                detail=detail[:2000],
            )
        )

    def write(self, step: str, phase: str, detail: str = "") -> None:
        with self.session() as s:
            self._add(s, step, phase, detail)

    async def intent(self, step: str) -> None:
        await self.soon(lambda s: self._add(s, step, "intent", ""))

    async def outcome(self, step: str, *, ok: bool, detail: str = "") -> None:
        await self.soon(lambda s: self._add(s, step, phase_of(ok), detail))


def phase_of(ok: bool) -> str:
    return "done" if ok else "failed"
