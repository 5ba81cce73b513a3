"""flotte serve under load, through its HTTP API only; prints JSON.

1. ``list``: 1,000 clusters recorded in 10 projects (made through ``POST /v1/clusters``
   on the fake cloud, no provisioning), then ``GET /v1/clusters`` by 50 concurrent
   clients (each with its project's token: 100 clusters a page): p50/p90/p99 latency
   and requests per second, on SQLite (one embedded process) and on PostgreSQL.
2. ``creates``: 2 serve processes (API and worker each) on one PostgreSQL; 5 projects
   with a quota of 20 clusters each submit 24 creates at once, spread over both APIs:
   how many were accepted (quota exactness: exactly 20 a project), time until every
   accepted cluster is CREATE_COMPLETE, how the jobs were shared between the workers,
   then every cluster deleted and what the fake cloud still holds (leaks: 0).

The GETs are measured twice: closed loop (each client asks again as soon as it has its
answer: the capacity, where latency is clients / throughput) and open loop at 300
requests a second offered by the 50 clients (latency at the target rate, each request
timed from when it was due). Usage: ``python bench/serve.py [--backends
sqlite,postgresql] [--clusters 1000] [--requests 4000] [--rate 300] [--parts
list,creates]``. Needs Debian's postgresql (scripts/bootstrap). The load generator (raw
keep-alive HTTP/1.1 on asyncio) shares the machine's 2 cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL test fixture starts the server

from fixtures.moto_server import free_port  # noqa: E402
from fixtures.postgres import PostgresServer, start_postgres, stop_postgres  # noqa: E402

FLOTTE = [sys.executable, "-m", "flotte.cli.main"]
PASSWORD = "bench-pass-1"
API = {"OpenStack-API-Version": "container-infra latest"}
COMPLETE, FAILED = "CREATE_COMPLETE", "CREATE_FAILED"


class Installation:
    """One flotte serve installation: its home, fake cloud, database, processes."""

    def __init__(self, root: Path, database_url: str | None) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "FLOTTE_HOME": str(root / "home"),
            "FLOTTE_FAKE_DIR": str(root / "cloud"),
        }
        self.env.pop("FLOTTE_DATABASE_URL", None)
        if database_url:
            self.env["FLOTTE_DATABASE_URL"] = database_url
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def flotte(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*FLOTTE, *args], env=self.env, input=stdin, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"flotte {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def user(self, name: str, project: str, *, admin: bool = False) -> None:
        self.flotte("project", "create", project)
        extra = ["--admin"] if admin else []
        self.flotte("user", "create", name, "--project", project, *extra, "--password-stdin",
                    stdin=PASSWORD + "\n")  # fmt: skip

    def serve(self, name: str, concurrency: int = 8) -> str:
        port = free_port()
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [*FLOTTE, "serve", "--port", str(port), "--name", name,
             "--concurrency", str(concurrency)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )  # fmt: skip
        self.procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"flotte serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def jobs_done(self) -> dict[str, int]:
        """Creates each serve process ran (its log's "done" lines)."""
        out = {}
        for proc, log in self.procs:
            text = log.read_text(errors="replace")
            out[log.stem] = sum(
                1 for line in text.splitlines() if "job cluster.create" in line and ": done" in line
            )
            del proc
        return out

    def cloud(self) -> dict[str, int]:
        """What the fake cloud holds, by kind (its own listing: the shared file)."""
        path = self.root / "cloud" / "cloud.json"
        counts: dict[str, int] = {"node": 0, "network": 0}
        if path.exists():
            for res in json.loads(path.read_text())["resources"].values():
                counts[res["kind"]] = counts.get(res["kind"], 0) + 1
        return counts

    def stop(self) -> None:
        for proc, _ in self.procs:
            proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def token(client: httpx.AsyncClient, url: str, user: str, project: str) -> tuple[str, str]:
    """A standalone Keystone v3 token and the project's id."""
    scope = {"project": {"name": project, "domain": {"id": "default"}}}
    identity = {
        "methods": ["password"],
        "password": {"user": {"name": user, "domain": {"id": "default"}, "password": PASSWORD}},
    }
    r = await client.post(
        f"{url}/v3/auth/tokens", json={"auth": {"identity": identity, "scope": scope}}
    )
    r.raise_for_status()
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def h(tok: str) -> dict[str, str]:
    return {**API, "X-Auth-Token": tok}


async def setup(inst: Installation, url: str, projects: list[str], quota: int) -> dict[str, str]:
    """Users, a public fake-cloud template and quotas; returns a token per project."""
    inst.user("admin", "admin", admin=True)
    for p in projects:
        inst.user(f"u-{p}", p)
    async with httpx.AsyncClient(timeout=30) as client:
        admin, _ = await token(client, url, "admin", "admin")
        template = {
            "name": "fake", "coe": "swarm-mode", "image_id": "none", "public": True,
            "labels": {"driver": "fake", "no_provision": "true"},
        }  # fmt: skip
        r = await client.post(f"{url}/v1/clustertemplates", json=template, headers=h(admin))
        r.raise_for_status()
        tokens = {}
        for p in projects:
            tokens[p], pid = await token(client, url, f"u-{p}", p)
            body = {"project_id": pid, "resource": "Cluster", "hard_limit": quota}
            (await client.post(f"{url}/v1/quotas", json=body, headers=h(admin))).raise_for_status()
    return tokens


async def create(
    client: httpx.AsyncClient, url: str, tok: str, name: str, sem: asyncio.Semaphore
) -> int:
    body = {"name": name, "cluster_template_id": "fake", "master_count": 1, "node_count": 0}
    async with sem:
        r = await client.post(f"{url}/v1/clusters", json=body, headers=h(tok))
    return r.status_code


async def statuses(client: httpx.AsyncClient, url: str, tok: str) -> list[str]:
    r = await client.get(f"{url}/v1/clusters", headers=h(tok))
    r.raise_for_status()
    return [c["status"] for c in r.json()["clusters"]]


async def until_complete(client: httpx.AsyncClient, url: str, tokens: dict[str, str],
                         expected: int, timeout: float) -> dict[str, int]:  # fmt: skip
    """Poll until ``expected`` clusters in all are COMPLETE (or failed); counts by status."""
    deadline = time.monotonic() + timeout
    while True:
        counts: dict[str, int] = {}
        for tok in tokens.values():
            for s in await statuses(client, url, tok):
                counts[s] = counts.get(s, 0) + 1
        if counts.get(COMPLETE, 0) + counts.get(FAILED, 0) >= expected:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"clusters not complete after {timeout:.0f} s: {counts}")
        await asyncio.sleep(0.25)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


class Connection:
    """One keep-alive HTTP/1.1 connection sending one prepared GET: the load generator
    costs tens of microseconds a request, so the server has the CPU."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def list_load(
    url: str, tokens: dict[str, str], clients: int, total: int, rate: float | None
) -> dict[str, Any]:
    """``clients`` connections GET /v1/clusters, each with one project's token.

    ``rate`` None: closed loop, each client sends its next request when the last one
    answered (the server's capacity). ``rate`` R: open loop, R requests a second in all,
    each timed from when it was due, so a slow answer delays no measurement.
    """
    parsed = httpx.URL(url)
    toks = list(tokens.values())
    latencies: list[float] = []
    errors = 0
    left = total
    conns = [
        Connection(str(parsed.host), int(parsed.port or 80), (
            f"GET /v1/clusters HTTP/1.1\r\nHost: {parsed.host}\r\n"
            f"X-Auth-Token: {toks[i % len(toks)]}\r\n"
            "OpenStack-API-Version: container-infra latest\r\n\r\n"
        ).encode())
        for i in range(clients)
    ]  # fmt: skip
    for c in conns[: len(toks)]:  # warm up: every project's first page
        await c.get()
    interval = clients / rate if rate else 0.0
    began = time.perf_counter()

    async def one(i: int, conn: Connection) -> None:
        nonlocal left, errors
        due = began + interval * i / clients  # spread the clients over one interval
        while left > 0:
            left -= 1
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            start = due if interval else time.perf_counter()
            if await conn.get() != 200:
                errors += 1
            latencies.append(time.perf_counter() - start)
            due += interval

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - began
    for c in conns:
        await c.close()
    return {
        "mode": f"open loop, {rate:g} req/s offered" if rate else "closed loop",
        "requests": len(latencies), "clients": clients, "errors": errors,
        "p50_ms": pct(latencies, 0.50), "p90_ms": pct(latencies, 0.90),
        "p99_ms": pct(latencies, 0.99), "max_ms": round(max(latencies) * 1000, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
    }  # fmt: skip


async def part_list(
    root: Path, backend: str, pg: PostgresServer | None, args: Any
) -> dict[str, Any]:
    url_db = pg.url(pg.create_database()) if pg else None
    inst = Installation(root / f"list-{backend}", url_db)
    inst.root.mkdir(parents=True)
    try:
        url = inst.serve("serve-1", concurrency=16)
        projects = [f"p{i}" for i in range(args.projects)]
        per = args.clusters // len(projects)
        tokens = await setup(inst, url, projects, quota=per)
        started = time.monotonic()
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=60) as client:
            codes = await asyncio.gather(
                *(
                    create(client, url, tokens[p], f"c{i}", sem)
                    for p in projects
                    for i in range(per)
                )
            )
            counts = await until_complete(client, url, tokens, len(codes), timeout=1800)
        recorded = time.monotonic() - started
        capacity = await list_load(url, tokens, args.clients, args.requests, None)
        paced = await list_load(url, tokens, args.clients, args.requests, args.rate)
        return {
            "backend": backend, "clusters": counts.get(COMPLETE, 0), "projects": len(projects),
            "clusters_per_page": per, "seed_s": round(recorded, 1),
            "accepted": codes.count(202), "capacity": capacity, "at_target_rate": paced,
            "target": {"p99_ms": 50, "requests_per_s": 300},
        }  # fmt: skip
    finally:
        inst.stop()


async def part_creates(root: Path, pg: PostgresServer, args: Any) -> dict[str, Any]:
    inst = Installation(root / "creates", pg.url(pg.create_database()))
    inst.root.mkdir(parents=True)
    try:
        urls = [inst.serve("serve-a"), inst.serve("serve-b")]
        projects = [f"q{i}" for i in range(args.create_projects)]
        tokens = await setup(inst, urls[0], projects, quota=args.quota)
        asks = args.quota + args.over_quota
        sem = asyncio.Semaphore(1000)  # all at once
        async with httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=200)
        ) as client:
            started = time.monotonic()
            codes = await asyncio.gather(
                *(create(client, urls[(i + n) % 2], tokens[p], f"x{i}", sem)
                  for n, p in enumerate(projects) for i in range(asks))
            )  # fmt: skip
            submitted = time.monotonic() - started
            accepted = codes.count(202)
            counts = await until_complete(client, urls[1], tokens, accepted, timeout=1800)
            complete_s = time.monotonic() - started
            per_project = {}
            for p, tok in tokens.items():
                per_project[p] = len(await statuses(client, urls[0], tok))
            held = inst.cloud()
            for tok in tokens.values():  # then delete everything
                r = await client.get(f"{urls[0]}/v1/clusters", headers=h(tok))
                for c in r.json()["clusters"]:
                    await client.delete(f"{urls[1]}/v1/clusters/{c['uuid']}", headers=h(tok))
            deadline = time.monotonic() + 600
            while any([await statuses(client, urls[0], t) for t in tokens.values()]):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            deleted_s = time.monotonic() - started - complete_s
        left = inst.cloud()
        return {
            "backend": "postgresql", "serve_processes": 2, "projects": len(projects),
            "quota_per_project": args.quota, "submitted": len(codes), "accepted": accepted,
            "refused": {str(c): codes.count(c) for c in sorted(set(codes)) if c != 202},
            "clusters_per_project": per_project,
            "quota_exact": all(n == args.quota for n in per_project.values()),
            "submit_s": round(submitted, 2), "all_complete_s": round(complete_s, 1),
            "statuses": counts, "jobs_done_per_process": inst.jobs_done(),
            "cloud_nodes_when_complete": held["node"], "delete_all_s": round(deleted_s, 1),
            "leaked_after_delete": sum(left.values()),
        }  # fmt: skip
    finally:
        inst.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--parts", default="list,creates")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--projects", type=int, default=10)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--rate", type=float, default=300, help="req/s offered in the open loop")
    ap.add_argument("--create-projects", type=int, default=5)
    ap.add_argument("--quota", type=int, default=20)
    ap.add_argument("--over-quota", type=int, default=4, help="creates asked beyond the quota")
    args = ap.parse_args()
    parts = args.parts.split(",")
    backends = args.backends.split(",")
    need_pg = "creates" in parts or "postgresql" in backends
    pg = start_postgres() if need_pg else None
    out: dict[str, Any] = {
        "bench": "serve",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # the machine is shared: others' load at the start says how much CPU we had
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    try:
        with tempfile.TemporaryDirectory(prefix="flotte-bench-serve-") as tmp:
            root = Path(tmp)
            if "list" in parts:
                out["list"] = [
                    await part_list(root, b, pg if b == "postgresql" else None, args)
                    for b in backends
                ]
            if "creates" in parts and pg is not None:
                out["creates"] = await part_creates(root, pg, args)
    finally:
        if pg is not None:
            stop_postgres(pg)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
