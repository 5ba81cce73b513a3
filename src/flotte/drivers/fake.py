"""A fake cloud kept in a file: the driver the planner, service and API tests use.

Its "resources" (networks and nodes) are JSON records in ``<dir>/cloud.json``, shared
by every process that points at the same directory (``--fake-dir`` or
``FLOTTE_FAKE_DIR``) under an ``flock``, so two ``flotte serve`` workers see one cloud.
It marks everything with the owner tags like a real driver, adopts what a killed run
made, and can be told to fail: a quota (``--fake-quota``), node names whose create
fails (``--fake-fail``), latency per call (``--fake-latency``). It makes no Docker
engine: use it with ``--no-provision``; a provisioned node's endpoint is a placeholder.
"""

from __future__ import annotations

import asyncio
import fcntl
import fnmatch
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from flotte.drivers.base import Capabilities, Driver, DriverOption, GroupSpec
from flotte.errors import DriverError, QuotaExceeded, UsageError
from flotte.models import OWNER_KEY, Endpoint, EngineOptions, NodeRecord, NodeSpec, NodeState, Owner

_STATES = {"running": NodeState.RUNNING, "stopped": NodeState.STOPPED}

# The cloud's records as last read, per file, with the file's identity then: a listing
# of N nodes asks N states but parses the file once (it reread it per node, so
# ``machine ls`` over 2,000 nodes parsed 2,000 x 2,000 records, for minutes).
_read_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
# A file written this recently is not cached (git's "racy" entries): timestamps have a
# kernel tick's granularity and a freed inode number comes back, so two writes within
# one tick could leave the same (inode, mtime, size); once older, any later write has a
# later mtime.
_SETTLED_S = 0.1


class FakeDriver(Driver):
    name = "fake"
    description = "a cloud kept in a file, for tests and demos (no Docker engine)"
    hidden = True  # not offered in --help: it makes nothing real
    capabilities = Capabilities(start_stop=True, kill=True, max_parallel=64)
    options: ClassVar[tuple[DriverOption, ...]] = (
        DriverOption("fake-dir", "Directory of the fake cloud", envvar="FLOTTE_FAKE_DIR"),
        DriverOption("fake-quota", "Most nodes this installation may have", type=int),
        DriverOption("fake-fail", "Node names (globs, comma-separated) whose create fails"),
        DriverOption("fake-latency", "Seconds each call takes", type=float),
        DriverOption("fake-flavor", "Flavor name, for the catalog", template_field="flavor_id"),
    )

    # -- the cloud file -----------------------------------------------------------------
    def _dir(self) -> Path:
        configured = self.option("fake_dir") or os.environ.get("FLOTTE_FAKE_DIR")
        return Path(configured) if configured else self.ctx.home / "fake-cloud"

    @contextmanager
    def _cloud(self) -> Iterator[dict[str, Any]]:
        """The cloud's records, locked for this process while the block runs."""
        directory = self._dir()
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "cloud.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = directory / "cloud.json"
            data: dict[str, Any] = (
                json.loads(path.read_text()) if path.exists() else {"resources": {}, "serial": 0}
            )
            yield data
            tmp = directory / f".cloud.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)

    @cached_property
    def _cloud_file(self) -> str:
        # made once per driver: pathlib's joins for each of a thousand nodes' states were
        # a third of what the fake driver cost ``machine ls``
        return str(self._dir() / "cloud.json")

    def _records(self) -> dict[str, Any]:
        """The cloud's resources for reading only: no lock needed, since writers replace
        the file whole (``os.replace``); reparsed only when the file changed."""
        path = self._cloud_file
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _read_cache.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        with open(path, encoding="utf-8") as f:
            resources: dict[str, Any] = json.loads(f.read())["resources"]
        if time.time() - st.st_mtime > _SETTLED_S:
            _read_cache[path] = (identity, resources)
        return resources

    async def _pause(self, share: float = 1.0) -> None:
        latency = float(self.option("fake_latency", 0) or 0) * share
        if latency > 0:
            await asyncio.sleep(latency)

    @staticmethod
    def _owned(res: Mapping[str, Any], owner: Owner) -> bool:
        tags = res.get("tags", {})
        return all(tags.get(k) == v for k, v in owner.tags().items())

    # -- contract ------------------------------------------------------------------------
    async def check(self, group: GroupSpec) -> None:
        await self._pause()
        for node in group.nodes:
            for key, _value in node.options.items():
                if key.startswith("fake_") and key not in {o.key for o in self.options}:
                    raise UsageError(f"unknown fake option {key!r}")
            if value_is_bad(node.options.get("fake_flavor")):
                raise UsageError(f"flavor {node.options.get('fake_flavor')!r} not found")
        quota = self.option("fake_quota")
        if quota is None:
            return
        with self._cloud() as cloud:
            used = sum(
                1
                for r in cloud["resources"].values()
                if r["kind"] == "node" and r["tags"].get(OWNER_KEY) == self.ctx.installation
            )
        wanted = len(group.nodes) or group.size
        if used + wanted > int(quota):
            raise QuotaExceeded(
                f"the fake cloud holds {int(quota)} node(s): {used} in use, {wanted} asked"
            )

    async def prepare(self, group: GroupSpec) -> dict[str, Any]:
        await self._pause()
        with self._cloud() as cloud:
            for rid, res in cloud["resources"].items():
                if res["kind"] == "network" and self._owned(res, group.owner):
                    return {"network": rid}
            rid = f"net-{uuid.uuid4().hex[:8]}"
            cloud["resources"][rid] = {
                "kind": "network",
                "name": group.name,
                "tags": group.owner.tags(),
            }
            return {"network": rid}

    async def release(self, group: GroupSpec, shared: Mapping[str, Any]) -> None:
        await self._pause()
        with self._cloud() as cloud:
            cloud["resources"].pop(str(shared.get("network", "")), None)

    async def create(self, spec: NodeSpec, shared: Mapping[str, Any]) -> NodeRecord:
        # Half the latency before the cloud makes the node, half before the answer
        # arrives: a command killed in between leaves a node it never heard of.
        await self._pause(0.5)
        pattern = str(self.option("fake_fail") or spec.options.get("fake_fail") or "")
        with self._cloud() as cloud:
            found = next(
                (
                    (rid, r)
                    for rid, r in cloud["resources"].items()
                    if r["kind"] == "node" and r["name"] == spec.name and self._owned(r, spec.owner)
                ),
                None,
            )
            if found is None:
                if any(fnmatch.fnmatch(spec.name, p.strip()) for p in pattern.split(",") if p):
                    raise DriverError(f"the fake cloud refused to create {spec.name}")
                quota = self.option("fake_quota")
                mine = [
                    r
                    for r in cloud["resources"].values()
                    if r["kind"] == "node" and r["tags"].get(OWNER_KEY) == self.ctx.installation
                ]
                if quota is not None and len(mine) >= int(quota):
                    raise QuotaExceeded(f"quota of {int(quota)} fake node(s) reached")
                cloud["serial"] += 1
                serial = cloud["serial"]
                rid = f"node-{uuid.uuid4().hex[:8]}"
                res = {
                    "kind": "node",
                    "name": spec.name,
                    "state": "running",
                    "address": f"10.{serial // 65536 % 256}.{serial // 256 % 256}.{serial % 256}",
                    "host": spec.host,
                    "flavor": spec.options.get("fake_flavor"),
                    "tags": spec.tags(),
                }
                cloud["resources"][rid] = res
                found = (rid, res)
        rid, res = found
        await self._pause(0.5)
        return NodeRecord(
            name=spec.name,
            driver=self.name,
            provider_id=rid,
            addresses=[str(res["address"])],
            data={"network": shared.get("network"), "host": res.get("host")},
        )

    async def provision(self, spec: NodeSpec, node: NodeRecord, engine: EngineOptions) -> Endpoint:
        await self._pause()
        return self.endpoint(node)

    def endpoint(self, node: NodeRecord) -> Endpoint:
        return Endpoint(host=node.address)

    def _find(self, cloud: dict[str, Any], node: NodeRecord) -> dict[str, Any] | None:
        res = cloud["resources"].get(node.provider_id)
        return res if isinstance(res, dict) else None

    async def state(self, node: NodeRecord) -> NodeState:
        await self._pause()
        found = self._records().get(node.provider_id)
        res = found if isinstance(found, dict) else None
        return _STATES.get(res["state"], NodeState.UNKNOWN) if res else NodeState.NOT_FOUND

    async def _set(self, node: NodeRecord, state: str) -> None:
        await self._pause()
        with self._cloud() as cloud:
            res = self._find(cloud, node)
            if res is None:
                raise DriverError(f"fake node {node.name} is gone")
            res["state"] = state

    async def start(self, node: NodeRecord) -> NodeRecord:
        await self._set(node, "running")
        return node

    async def stop(self, node: NodeRecord) -> None:
        await self._set(node, "stopped")

    async def remove(self, node: NodeRecord, *, purge: bool = False) -> None:
        await self._pause()
        with self._cloud() as cloud:
            cloud["resources"].pop(node.provider_id, None)

    async def leftovers(self, owner: Owner) -> list[str]:
        return sorted(
            f"{r['kind']} {r['name']}" for r in self._records().values() if self._owned(r, owner)
        )

    async def sweep(self, owner: Owner) -> int:
        await self._pause()
        with self._cloud() as cloud:
            doomed = [rid for rid, r in cloud["resources"].items() if self._owned(r, owner)]
            for rid in doomed:
                del cloud["resources"][rid]
        return len(doomed)


def value_is_bad(flavor: Any) -> bool:
    """The fake cloud knows flavors named ``f.*``; anything else is "not found"."""
    return flavor is not None and not str(flavor).startswith("f.")
