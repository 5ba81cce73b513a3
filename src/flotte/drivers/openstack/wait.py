"""Waiting for servers without one polling loop per server.

Thirty servers booting at once, each polled every second on its own, would cost
thirty requests a second and count against the cloud's rate limit. A
:class:`ServerWatcher` instead polls for every waiter together: one ``GET
/servers/{id}`` when a single server is awaited, otherwise one ``GET
/servers/detail`` filtered by the names' common prefix, and wakes each waiter whose
condition holds. A server missing from the list is confirmed gone by its own GET. Per-node API calls stay flat as the cluster grows.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flotte.drivers.batch import Batcher, answers
from flotte.drivers.openstack.connection import Provider, status_of
from flotte.errors import DriverError, QuotaExceeded, TimeoutError_

# A server matching a waiter's condition, or None once the server is gone.
Check = Callable[[Any | None], bool]

_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass
class _Waiter:
    name: str
    check: Check
    future: asyncio.Future[Any]


@dataclass
class _Pending:
    waiters: list[_Waiter] = field(default_factory=list)


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
    """A server as ``GET /servers/detail`` described it, read without the SDK.

    The waiters' checks read only the status, task state and fault, and a booting
    server's description changes at almost every poll; building the SDK's object for
    every listed server at every poll was flotte's largest CPU cost while servers
    booted (profile of a 30-node create: 1.9 s of samples, against 0.75 s for the
    creates). The object is built once, for the waiter whose check passed.
    """

    __slots__ = ("_build", "_raw", "fault", "id", "name", "status", "task_state")

    def __init__(self, raw: dict[str, Any], build: Callable[[dict[str, Any]], Any]) -> None:
        self.id = str(raw.get("id") or "")
        self.name = str(raw.get("name") or "")
        self.status = raw.get("status")
        self.task_state = raw.get("OS-EXT-STS:task_state")
        self.fault = raw.get("fault")
        self._raw = raw
        self._build = build

    def server(self) -> Any:
        """The SDK's ``Server`` for this description."""
        return self._build(self._raw)


def as_server(found: Any) -> Any:
    """The SDK's object for what a poll found (a :class:`Listed`, a GET's ``Server``)."""
    return found.server() if isinstance(found, Listed) else found


class ServerWatcher:
    """Polls Nova for every awaited server together; one per Provider and event loop."""

    def __init__(self, provider: Provider, interval: float = 1.0, first: float = 0.25) -> None:
        self.provider = provider
        self.interval = interval
        # A server awaited anew is looked at after ``first`` seconds, then twice as long
        # each time up to ``interval``: a quick boot is seen at once (measured: the
        # first poll a full second late was half of flotte's lag on one devcloud node),
        # a slow one costs no more requests than a fixed interval.
        self.first = min(first, interval)
        self._delay = self.first
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None
        self._now: Batcher[None, tuple[str, str], Any] = Batcher(answers(self._fetch_now))

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
    ) -> Any:
        """Return the server once ``check(server)`` is true (``server`` is None once gone).

        ``check`` may raise (e.g. DriverError for a server in ERROR); that error is
        raised here. After ``timeout`` seconds, TimeoutError_ names ``what``.
        """
        loop = asyncio.get_running_loop()
        waiter = _Waiter(name, check, loop.create_future())
        if server_id not in self._pending:
            self._delay = self.first
        self._pending.setdefault(server_id, _Pending()).waiters.append(waiter)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="openstack-server-watcher")
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError as err:
            raise TimeoutError_(
                f"{what}: still waiting after {timeout:.0f} s",
                hint="raise --openstack-active-timeout or look at the server's console log",
            ) from err
        finally:
            self._drop(server_id, waiter)

    def _drop(self, server_id: str, waiter: _Waiter) -> None:
        pending = self._pending.get(server_id)
        if pending is None:
            return
        if waiter in pending.waiters:
            pending.waiters.remove(waiter)
        if not pending.waiters:
            del self._pending[server_id]

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, self.interval)
            snapshot = {sid: list(p.waiters) for sid, p in self._pending.items()}
            if not snapshot:
                break
            try:
                servers = await self._fetch(
                    {sid: [w.name for w in ws] for sid, ws in snapshot.items()}
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
                            w.future.set_result(as_server(server))
                    except Exception as err:
                        w.future.set_exception(err)

    async def current(self, server_id: str, name: str) -> Any:
        """The server as Nova has it now (None: gone), asked together with every other
        server asked at the same moment: ``machine ls`` asks each node's state at once,
        and a thousand GETs became one listing. Only its ``id``, ``name``, ``status``,
        ``task_state`` and ``fault`` are to be read (a :class:`Listed` when listed):
        building a thousand SDK objects would cost ``machine ls`` seconds."""
        return await self._now.submit(None, (server_id, name))

    async def _fetch_now(self, _: None, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        names: dict[str, list[str]] = {}
        for sid, name in keys:
            names.setdefault(sid, []).append(name)
        found = await self._fetch(names)
        return {(sid, name): found.get(sid) for sid, name in keys}

    async def _fetch(self, names: dict[str, list[str]]) -> dict[str, Any]:
        """The servers with these IDs (None: gone), each known by the names in ``names``."""
        if len(names) == 1:
            sid = next(iter(names))
            return {sid: await self._get(sid)}
        query = servers_named([n for ns in names.values() for n in ns])
        listed = await self.provider.read(lambda: self._list(query), "list servers")
        found: dict[str, Any] = {s.id: s for s in listed if s.id in names}
        # Absent from the list: confirm with a GET (404: gone) before believing it.
        missing = [sid for sid in names if sid not in found]
        found.update(zip(missing, await asyncio.gather(*map(self._get, missing)), strict=True))
        return found

    def _list(self, query: dict[str, Any]) -> list[Listed]:
        """``GET /servers/detail``, every page, each server kept as Nova's JSON."""
        from openstack import exceptions as os_exc
        from openstack.compute.v2.server import Server

        compute = self.provider.conn.compute
        microversion = Server._get_microversion(compute)  # the one the SDK's list uses

        def build(raw: dict[str, Any]) -> Any:
            return Server.existing(
                microversion=microversion, connection=compute._get_connection(), **raw
            )

        uri: str | None = "/servers/detail"
        params = {k: v for k, v in query.items() if k != "details"}
        listed: list[Listed] = []
        while uri:
            response = compute.get(
                uri,
                params=params,
                microversion=microversion,
                headers={"Accept": "application/json"},
            )
            os_exc.raise_from_response(response)
            data = response.json()
            listed.extend(Listed(raw, build) for raw in data.get("servers") or [])
            uri, params = _next_page(data), {}  # the next page's link holds the query
        return listed

    async def _get(self, server_id: str) -> Any:
        from openstack import exceptions as os_exc

        compute = self.provider.conn.compute
        try:
            return await self.provider.read(
                lambda: compute.get_server(server_id), "get server", raw=True
            )
        except os_exc.NotFoundException:
            return None
        except Exception as err:
            if status_of(err) == 404:
                return None
            raise DriverError(f"get server {server_id}: {err}") from err


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
