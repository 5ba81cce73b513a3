"""Waiting for servers without one polling loop per server.

Thirty servers booting at once, each polled every second on its own, would cost
thirty requests a second and count against the cloud's rate limit. A
:class:`ServerWatcher` instead polls for every waiter together: one ``GET
/servers/{id}`` when a single server is awaited, otherwise one ``GET
/servers/detail`` filtered by the names' common prefix, and wakes each waiter whose
condition holds. After the first, a poll lists only the servers changed since the one
before (Nova's ``changes-since``). A server missing from the list is confirmed gone by
its own GET. Per-node API calls stay flat as the cluster grows, and so does the size
of each listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flotte.drivers.batch import Batcher, answers
from flotte.drivers.openstack import rest
from flotte.drivers.openstack.connection import Provider
from flotte.errors import DriverError, QuotaExceeded, TimeoutError_
from flotte.models import Owner

# A server matching a waiter's condition, or None once the server is gone.
Check = Callable[[Any | None], bool]

_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9-]+$")

# A poll lists only the servers changed since the one before (Nova's changes-since),
# less this margin for clock skew between Nova's services, and lists in full at least
# every _FULL_EVERY polls: a change a skewed clock hid is seen within that many polls.
_SINCE_MARGIN = 10.0
_FULL_EVERY = 30

# Past its first second, the poll interval grows with how long the oldest awaited server
# has waited: a twentieth of that, up to _LONGEST. A server is then seen at most 5 % of
# the longest wait late (10 s at most). Polling once a second for the whole create cost
# 1,075 listings at 400 servers, as many as devcloud took seconds; each is a round trip
# and a parse of flotte's CPU (2-3 ms), so flotte's CPU per node followed the cloud's
# wall time instead of the node count.
_PATIENCE = 1 / 20
_LONGEST = 10.0


@dataclass
class _Waiter:
    name: str
    check: Check
    together: str  # the group it is awaited with (``awaited_with``)
    future: asyncio.Future[Any]


@dataclass
class _Pending:
    since: float  # the event loop's time when the first waiter came
    waiters: list[_Waiter] = field(default_factory=list)


def patience_end(started: float, progress: float | None, timeout: float) -> float:
    """When a waiter that started at ``started`` gives up: ``timeout`` seconds after it
    started, or after the last time a server awaited beside it came up, whichever is
    later. Four hundred boots accepted within a minute come up one after another over
    ten minutes on a busy cloud: each server's own clock would fail most of them while
    the cloud is still working through them; a cloud where nothing comes up for
    ``timeout`` seconds is stuck."""
    return max(started, progress if progress is not None else started) + timeout


def awaited_with(owner: Owner) -> str:
    """The group a server is awaited with: its cluster's (or machine's) servers."""
    return f"{owner.installation}/{owner.cluster or owner.machine or ''}"


def next_delay(delay: float, waited: float, interval: float) -> float:
    """The pause before the next poll, after a pause of ``delay``, when the oldest server
    awaited has waited ``waited`` seconds: twice the last pause up to ``interval`` (a
    quick boot is seen at once), then a twentieth of the longest wait, up to 10 s."""
    return max(min(delay * 2, interval), min(waited * _PATIENCE, _LONGEST))


# Nova's faults for a server it accepted and then could not place or count: no host
# with room (the scheduler), a quota found short by the conductor's second check.
_CAPACITY = re.compile(
    r"No valid host|not enough hosts|Insufficient compute resources|Quota exceeded|"
    r"TooManyInstances|exceeds? .*quota",
    re.IGNORECASE,
)


def capacity_fault(message: str) -> bool:
    """Whether an ERROR server's fault says the cloud is full (or the quota short),
    rather than that the server is broken: an overflow then fills its next group."""
    return bool(_CAPACITY.search(message))


def fault_message(server: Any) -> str:
    """Nova's reason for an ERROR server, as one line."""
    fault = getattr(server, "fault", None) or {}
    if isinstance(fault, dict):
        message = fault.get("message") or ""
        details = fault.get("details") or ""
        # Nova puts a traceback in details for admins only; keep its first line, unless
        # that is only the traceback's header.
        first = details.strip().splitlines()[0] if details.strip() else ""
        if first.startswith("Traceback"):
            first = ""
        text = message if not first or first in message else f"{message}: {first}"
        if text:
            return " ".join(text.split())[:400]
    return "no fault reported by Nova"


def servers_named(names: list[str]) -> dict[str, Any]:
    """The ``servers(...)`` query that lists at least the servers called ``names``."""
    prefix = os.path.commonprefix(names)  # noqa: RUF071 - names, not paths
    query: dict[str, Any] = {"details": True}
    if prefix and _SIMPLE_NAME.match(prefix):
        # Nova matches names as a regular expression; alternation ("a|b") is not
        # honoured by every deployment (measured: devcloud), an anchored prefix is.
        query["name"] = f"^{prefix}"
    return query


def _next_page(data: dict[str, Any]) -> str | None:
    """Nova's link to the next page of a listing (``servers_links``), if any."""
    for link in data.get("servers_links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return str(link["href"])
    return None


class Listed:
    """A server as Nova's API described it, read without the SDK.

    The waiters' checks read only the status, task state and fault, and a booting
    server's description changes at almost every poll. Building the SDK's ``Server``
    (about 9 ms each, profile of a 100-node create) for every server a poll found was
    flotte's largest CPU cost while servers booted; no waiter needs more than these
    fields and the metadata (the node's owner marks).
    """

    __slots__ = ("fault", "id", "metadata", "name", "status", "task_state")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.id = str(raw.get("id") or "")
        self.name = str(raw.get("name") or "")
        self.status = raw.get("status")
        self.task_state = raw.get("OS-EXT-STS:task_state")
        self.fault = raw.get("fault")
        self.metadata: dict[str, str] = dict(raw.get("metadata") or {})


class ServerWatcher:
    """Polls Nova for every awaited server together; one per Provider and event loop."""

    def __init__(self, provider: Provider, interval: float = 1.0, first: float = 0.25) -> None:
        self.provider = provider
        self.interval = interval
        # Servers awaited when none were are looked at after ``first`` seconds, then
        # twice as long each time up to ``interval`` (``next_delay``): a quick boot is
        # seen at once (measured: the first poll a full second late was half of
        # flotte's lag on one devcloud node). A server awaited beside others does not
        # start that over: a cluster's servers, awaited one after another for as long
        # as the cloud took to accept them, kept the poll at a quarter of a second.
        self.first = min(first, interval)
        self._delay = self.first
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None
        # Set by a wait that starts when nothing else was awaited: the poll loop may be
        # in a pause of up to 10 s chosen for servers since gone.
        self._fresh = asyncio.Event()
        self._now: Batcher[None, tuple[str, str], Listed | None] = Batcher(answers(self._fetch_now))
        # The waiters' last poll: each server as it was then, and when that was.
        self._known: dict[str, Listed] = {}
        self._since: str | None = None
        self._deltas = 0
        # When a server last came through, per group of servers awaited together (a
        # cluster's): under ``flotte serve`` another cluster's boots on the same account
        # must not keep a stuck server of this one waiting.
        self._progress: dict[str, float] = {}
        # How many waits each group still has: a group's progress is forgotten with its
        # last wait, without scanning every wait as each one ends (N^2 at N nodes).
        self._groups: Counter[str] = Counter()
        self._looked = float("-inf")  # when the last poll whose answer came was sent

    @classmethod
    def of(cls, provider: Provider) -> ServerWatcher:
        extras = provider.loop_state().extras
        watcher = extras.get("watcher")
        if watcher is None:
            watcher = extras["watcher"] = cls(provider)
        assert isinstance(watcher, ServerWatcher)
        return watcher

    async def wait(
        self,
        server_id: str,
        name: str,
        check: Check,
        *,
        timeout: float,
        what: str,
        together: str | None = None,
    ) -> Any:
        """Return the server once ``check(server)`` is true (``server`` is None once gone).

        ``check`` may raise (e.g. DriverError for a server in ERROR); that error is
        raised here. TimeoutError_ names ``what`` once ``timeout`` seconds passed without
        this server or one awaited with it (same ``together``, see ``awaited_with``;
        None: none) coming through (``patience_end``).
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(name, check, together or f"server {server_id}", loop.create_future())
        if not self._pending:
            self._delay = self.first
            self._fresh.set()
        started = loop.time()
        self._pending.setdefault(server_id, _Pending(started)).waiters.append(waiter)
        self._groups[waiter.together] += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="openstack-server-watcher")
        try:
            while not waiter.future.done():
                progress = self._progress.get(waiter.together)
                end = patience_end(started, progress, timeout)
                left = end - loop.time()
                if left <= 0:
                    # Only a poll made after the end says the server is still not there:
                    # one slowed by a busy cloud must not fail servers already up. A
                    # poll that does not come within another ``timeout`` is not awaited.
                    if self._looked >= end or left <= -timeout:
                        raise self._timed_out(what, started, progress, timeout)
                    left = 1.0
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel
                # that lands as the wait ends (an interrupted create waited on).
                with contextlib.suppress(TimeoutError):  # the end may have moved on
                    async with asyncio.timeout(left):
                        await asyncio.shield(waiter.future)
            return waiter.future.result()
        finally:
            self._drop(server_id, waiter)

    def _timed_out(
        self, what: str, started: float, progress: float | None, timeout: float
    ) -> TimeoutError_:
        waited = asyncio.get_running_loop().time() - started
        others = progress is not None and progress > started
        return TimeoutError_(
            f"{what}: still waiting after {waited:.0f} s"
            + (f" (none awaited with it came up in the last {timeout:.0f} s)" if others else ""),
            hint="raise --openstack-active-timeout or look at the server's console log",
        )

    def _drop(self, server_id: str, waiter: _Waiter) -> None:
        pending = self._pending.get(server_id)
        if pending is None or waiter not in pending.waiters:
            return
        pending.waiters.remove(waiter)
        if not pending.waiters:
            del self._pending[server_id]
        self._groups[waiter.together] -= 1
        if self._groups[waiter.together] <= 0:
            del self._groups[waiter.together]
            self._progress.pop(waiter.together, None)  # the group's wait is over

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            await self._pause()
            if not self._pending:
                break
            oldest = min(p.since for p in self._pending.values())
            self._delay = next_delay(self._delay, loop.time() - oldest, self.interval)
            snapshot = {sid: list(p.waiters) for sid, p in self._pending.items()}
            sent = loop.time()
            try:
                servers = await self._fetch(
                    {sid: [w.name for w in ws] for sid, ws in snapshot.items()}, delta=True
                )
            except Exception as err:  # deliver to every waiter of this round, keep none hung
                for waiters in snapshot.values():
                    for w in waiters:
                        if not w.future.done():
                            w.future.set_exception(err)
                continue
            for sid, waiters in snapshot.items():
                server = servers.get(sid)
                for w in waiters:
                    if w.future.done():
                        continue
                    try:
                        if w.check(server):
                            w.future.set_result(server)
                            self._progress[w.together] = loop.time()
                    except Exception as err:
                        w.future.set_exception(err)
            self._looked = sent

    async def _pause(self) -> None:
        """Sleep ``_delay`` seconds; or, once a wait starts afresh, ``first`` from then."""
        self._fresh.clear()
        try:
            async with asyncio.timeout(self._delay):
                await self._fresh.wait()
        except TimeoutError:
            return
        self._fresh.clear()
        await asyncio.sleep(self.first)

    async def current(self, server_id: str, name: str) -> Listed | None:
        """The server as Nova has it now (None: gone), asked together with every other
        server asked at the same moment: ``machine ls`` asks each node's state at once,
        and a thousand GETs became one listing."""
        return await self._now.submit(None, (server_id, name))

    async def _fetch_now(
        self, _: None, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Listed]:
        names: dict[str, list[str]] = {}
        for sid, name in keys:
            names.setdefault(sid, []).append(name)
        found = await self._fetch(names)
        # A key left out is a server gone (answers() gives its caller None).
        return {(sid, name): s for sid, name in keys if (s := found.get(sid)) is not None}

    def _changes_since(self, names: dict[str, list[str]]) -> str | None:
        """The ``changes-since`` for this poll, or None when it must list in full: no
        poll before it, a full listing due, or too many servers to ask each by its own
        GET: those not seen yet, and those last seen DELETED (a delta listing goes on
        showing a deleted server; gone is its absence from a full listing, or a 404).
        Listing in full whenever one server was DELETED made a mass delete list every
        remaining server at every poll (400 nodes: 434 listings of up to 400 servers)."""
        if self._since is None or self._deltas >= _FULL_EVERY:
            return None
        unsure = [sid for sid in names if _deleted_or_unseen(self._known.get(sid))]
        if len(unsure) > max(2, len(names) // 10):
            return None
        return self._since

    async def _fetch(
        self, names: dict[str, list[str]], *, delta: bool = False
    ) -> dict[str, Listed | None]:
        """The servers with these IDs (None: gone), each known by the names in ``names``.

        ``delta`` (the waiters' polls): list only what changed since the last poll and
        keep the rest as it was then. Listing every server at every poll sent Nova
        (nodes x polls) descriptions while a cluster booted, growing with the square
        of its size (200 nodes: 200 servers, 2 s of nova-api, each second).
        """
        if len(names) == 1:
            sid = next(iter(names))
            return {sid: await self._get(sid)}
        query = servers_named([n for ns in names.values() for n in ns])
        since = self._changes_since(names) if delta else None
        listed, stamp = await self.provider.read(
            lambda: self._list(query, since), "list servers", poll=True
        )
        found: dict[str, Listed | None] = {s.id: s for s in listed if s.id in names}
        if since is not None:
            for sid in names:
                known = self._known.get(sid)
                if known is None:
                    continue  # not seen yet: as listed, or asked by its own GET
                if known.status == "DELETED":
                    found.pop(sid, None)  # whether it is gone is for its own GET
                elif sid not in found:
                    found[sid] = known  # not listed: unchanged since the last poll
        # Absent (or not seen yet): ask its own GET (404: gone) before believing it.
        missing = [sid for sid in names if sid not in found]
        found.update(zip(missing, await asyncio.gather(*map(self._get, missing)), strict=True))
        if delta:
            self._known = {sid: s for sid, s in found.items() if s is not None}
            # Nova compares changes-since with the time its services stamped a change;
            # the margin covers their clocks' skew against the API's.
            self._since = None if stamp is None else _iso(stamp - _SINCE_MARGIN)
            self._deltas = 0 if since is None else self._deltas + 1
        return found

    def _list(self, query: dict[str, Any], since: str | None) -> tuple[list[Listed], float | None]:
        """``GET /servers/detail``, every page, each server kept as Nova's JSON; and the
        time Nova read them at the latest (epoch seconds), for the next ``changes-since``."""
        compute = self.provider.conn.compute
        uri: str | None = "/servers/detail"
        params = {k: v for k, v in query.items() if k != "details"}
        if since is not None:
            params["changes-since"] = since
        listed: list[Listed] = []
        stamp: float | None = None
        while uri:
            sent = time.monotonic()
            response = rest.send(
                compute, "GET", uri, params=params, microversion=self._microversion()
            )
            if stamp is None and (date := _date(response.headers.get("Date"))) is not None:
                # Nova dates its answer when done; it read the servers before that, up
                # to the whole request earlier (28 s for 400 servers on a busy cloud).
                stamp = date - (time.monotonic() - sent)
            data = response.json()
            listed.extend(Listed(raw) for raw in data.get("servers") or [])
            uri, params = _next_page(data), {}  # the next page's link holds the query
        return listed, stamp

    def _microversion(self) -> Any:
        return rest.compute_microversion(self.provider.conn.compute)

    async def _get(self, server_id: str) -> Listed | None:
        """``GET /servers/{id}`` as a :class:`Listed`; None once Nova answers 404."""
        compute = self.provider.conn.compute

        def get() -> Listed | None:
            response = rest.send(
                compute,
                "GET",
                f"/servers/{server_id}",
                gone_ok=True,
                microversion=self._microversion(),
            )
            return None if response is None else Listed(response.json().get("server") or {})

        try:
            return await self.provider.read(get, "get server", raw=True, poll=True)
        except Exception as err:
            raise DriverError(f"get server {server_id}: {err}") from err


def _deleted_or_unseen(server: Listed | None) -> bool:
    return server is None or server.status == "DELETED"


def _date(header: str | None) -> float | None:
    """An HTTP ``Date`` header as epoch seconds (None: absent or unreadable)."""
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def booted(name: str) -> Check:
    """A wait predicate: ACTIVE, or the boot's fault as an error (capacity: QuotaExceeded)."""

    def check(server: Any) -> bool:
        if server is None:
            raise DriverError(f"server {name} disappeared while booting")
        if server.status == "ERROR":
            fault = fault_message(server)
            kind = QuotaExceeded if capacity_fault(fault) else DriverError
            raise kind(f"server {name} failed to boot: {fault}")
        return bool(server.status == "ACTIVE")

    return check


def gone(server: Any) -> bool:
    # Not "status DELETED": nova-compute saves that before it releases the server's
    # resources and removes its row, and Nova lists it so for 3-6 s (measured on
    # devcloud, bench/fault_nova_delete.py); a delete that returned then left a server
    # an independent listing still showed (fault campaign, seed 5071).
    return server is None
