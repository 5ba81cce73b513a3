"""The web page's figures, measured in Debian's chromium; prints JSON.

1. ``list``: 1,000 clusters recorded in one project (through ``POST /v1/clusters`` on the
   fake cloud, no provisioning) behind a real ``flotte serve``; the cluster list page
   loaded 10 times, as the page shows it (100 rows a page) and with all 1,000 rows on
   one page (``?per=1000``): first contentful paint (the Performance API's
   ``first-contentful-paint``, from navigation start, so the server's time is in it)
   and page weight (bytes transferred: the document, its style sheet and script).
   Targets: FCP <= 300 ms, weight <= 200 kB. ``server_ms`` is the server's part of it
   (request sent to first byte, from the navigation timing); the load average is printed
   because the machine is shared.
2. ``progress``: a cluster page open on a cluster being changed; the bench journals a
   node's step (the executor's own journal writer, in the serve's database) and the page
   notes when that node's phase cell shows it: the delay from journal to page, 20
   times. Target: <= 1 s.

Usage: ``python bench/web.py [--clusters 1000] [--loads 10] [--changes 20] [--keep
DIR]`` (``--keep``: the installation stays in DIR, and a later run with the same DIR
measures it again without seeding). Needs
Debian's chromium (scripts/bootstrap). Shares the machine's 2 cores with the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.browser import CHROMIUM  # noqa: E402
from fixtures.serve import ServeProcess, serve_env  # noqa: E402

PASSWORD = "bench-pass-123"
PAINT = """() => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  return {fcp: paint ? paint.startTime : null,
          bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0),
          body: nav.decodedBodySize,
          server: nav.responseStart - nav.requestStart,
          rows: document.querySelectorAll('#clusters tbody tr').length,
          title: document.title};
}"""


async def _token(client: httpx.AsyncClient, url: str, user: str) -> str:
    ident = {"name": user, "domain": {"name": "Default"}, "password": PASSWORD}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": ident}}}}
    r = await client.post(f"{url}/v3/auth/tokens", json=body)
    r.raise_for_status()
    return r.headers["x-subject-token"]


async def seed(web: ServeProcess, clusters: int) -> float:
    """``clusters`` fake clusters of user ``u`` (project lab); seconds it took."""
    web.user("admin", "ops", PASSWORD, admin=True)
    web.user("u", "lab", PASSWORD)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        admin = await _token(client, web.url, "admin")
        user = await _token(client, web.url, "u")
        template = {
            "name": "fake", "coe": "swarm-mode", "image_id": "none", "public": True,
            "labels": {"driver": "fake", "no_provision": "true", "provider": "ovh"},
        }  # fmt: skip
        h = {"X-Auth-Token": admin, "OpenStack-API-Version": "container-infra latest"}
        (
            await client.post(f"{web.url}/v1/clustertemplates", json=template, headers=h)
        ).raise_for_status()
        lab = web.flotte("project", "list", "-f", "json").stdout
        pid = next(p["id"] for p in json.loads(lab) if p["name"] == "lab")
        quota = {"project_id": pid, "resource": "Cluster", "hard_limit": clusters + 10}
        (await client.post(f"{web.url}/v1/quotas", json=quota, headers=h)).raise_for_status()
        hu = {"X-Auth-Token": user, "OpenStack-API-Version": "container-infra latest"}
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            body = {"name": f"c{i:04d}", "cluster_template_id": "fake", "master_count": 1,
                    "node_count": 1 + i % 3}  # fmt: skip
            async with sem:
                (
                    await client.post(f"{web.url}/v1/clusters", json=body, headers=hu)
                ).raise_for_status()

        await asyncio.gather(*(one(i) for i in range(clusters)))
        while True:
            listed = (await client.get(f"{web.url}/v1/clusters", headers=hu)).json()["clusters"]
            if any(c["status"] == "CREATE_FAILED" for c in listed):
                raise SystemExit(f"a cluster failed: {web.log_tail()[-500:]}")
            if all(c["status"] == "CREATE_COMPLETE" for c in listed):
                break
            await asyncio.sleep(1)
    return time.monotonic() - started


def log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("#user", "u")
    page.fill("#password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{url}/ui/clusters")


def loads(page: Any, url: str, n: int) -> dict[str, Any]:
    fcp, weight, server, rows, body, title = [], [], [], 0, 0, ""
    for _ in range(n):
        page.goto(url)
        page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length")
        got = page.evaluate(PAINT)
        fcp.append(got["fcp"])
        weight.append(got["bytes"])
        server.append(got["server"])
        rows, body, title = got["rows"], got["body"], got["title"]
    return {
        "rows": rows,
        "title": title,
        "fcp_ms": {"median": round(statistics.median(fcp), 1), "max": round(max(fcp), 1)},
        # from the request sent to the first byte of the answer: the server's part of FCP
        "server_ms": round(statistics.median(server), 1),
        "transferred_kb": round(statistics.median(weight) / 1024, 1),
        "html_kb_uncompressed": round(body / 1024, 1),
    }


def progress(page: Any, web: ServeProcess, changes: int) -> dict[str, Any]:
    from flotte.service import Service

    svc = Service(web.home, lock_wait=0.0)
    cluster = next(c for c in svc.store.clusters() if c.project)
    node = svc.store.nodes(cluster=cluster.name)[0].name
    svc.store.set_cluster(cluster.name, status="UPDATE_IN_PROGRESS")
    uuid = cluster.uuid
    page.goto(f"{web.url}/ui/clusters/{uuid}")
    page.wait_for_selector(f"tr[data-node='{node}']")
    page.evaluate(
        """(node) => {
            window.__seen = [];
            new MutationObserver(() => {
                const cell = document.querySelector(`tr[data-node='${node}'] .phase`);
                if (cell) window.__seen.push([Date.now(), cell.textContent]);
            }).observe(document.getElementById('nodes'), {childList: true, subtree: true});
        }""",
        node,
    )
    journal = svc.store.journal(f"cluster:{cluster.name}", "update")
    delays = []
    for i in range(changes):
        step, wanted = (
            (f"provision:{node}", "starting its engine")
            if i % 2 == 0
            else (f"join:{node}", "joining the swarm")
        )
        page.evaluate("window.__seen = []")
        written = time.time() * 1000
        journal.write(step, "intent")
        page.wait_for_function(
            "(w) => window.__seen.some(([t, text]) => text === w)", arg=wanted, timeout=10_000
        )
        seen = page.evaluate("(w) => window.__seen.find(([t, text]) => text === w)[0]", wanted)
        delays.append(seen - written)
        time.sleep(0.3)
    svc.store.set_cluster(cluster.name, status="UPDATE_COMPLETE")
    svc.close()
    return {
        "changes": changes,
        "delay_ms": {
            "median": round(statistics.median(delays), 1),
            "max": round(max(delays), 1),
        },
        "target_ms": 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the installation in this directory")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="flotte-bench-web-") as scratch:
        tmp = args.keep or Path(scratch)
        seeded = (tmp / "home" / "flotte.db").exists()
        env = serve_env(tmp, DOCKER_CONFIG=str(tmp / "docker"))
        web = ServeProcess(tmp / "home", env).start()
        try:
            seed_s = 0.0 if seeded else asyncio.run(seed(web, args.clusters))
            launch = ["--no-sandbox"] if os.geteuid() == 0 else []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=launch)
                page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
                log_in(page, web.url)
                paged = loads(page, f"{web.url}/ui/clusters", args.loads)
                whole = loads(page, f"{web.url}/ui/clusters?per=1000", args.loads)
                live = progress(page, web, args.changes)
                browser.close()
        finally:
            web.stop()
    print(
        json.dumps(
            {
                "bench": "web",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "load_average": os.getloadavg()[0],
                "clusters": args.clusters,
                "seed_s": round(seed_s, 1),
                "list_page_100_rows": paged,
                "list_page_1000_rows": whole,
                "targets": {"fcp_ms": 300, "weight_kb": 200},
                "progress": live,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
