"""Run flotte serve's API with uvicorn and an in-process job queue (tests only).

Until the ``flotte serve`` command lands, the end-to-end tests start the app this way:
``python api_server.py --home H --port P [--keystone-url URL] [--default-driver D]``.
Requests run as tasks of uvicorn's event loop, like the embedded worker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_harness import InlineJobs

from flotte.api.app import create_app
from flotte.serve_settings import ServeSettings
from flotte.service import Service
from flotte.state.tenancy import TenancyStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--keystone-url", default=None)
    parser.add_argument("--default-driver", default="local")
    parser.add_argument("--quota", type=int, default=20)
    args = parser.parse_args()
    settings = ServeSettings(
        home=args.home,
        identity="keystone" if args.keystone_url else "standalone",
        keystone_url=args.keystone_url,
        default_driver=args.default_driver,
        port=args.port,
        default_cluster_quota=args.quota,
    )
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    logging.getLogger("flotte.api").setLevel(logging.INFO)  # the access log
    svc = Service(args.home, lock_wait=0.0)
    app = create_app(settings, service=svc, jobs=InlineJobs(svc))
    beats = TenancyStore(svc.store)
    name = f"{socket.gethostname()}:{os.getpid()}"

    async def heartbeat() -> None:
        # what serve-jobs' processes record, so /v1/mservices has a row to show
        while True:
            beats.beat(name, socket.gethostname(), os.getpid(), "api,worker")
            await asyncio.sleep(10)

    async def serve() -> None:
        beating = asyncio.create_task(heartbeat())
        config = uvicorn.Config(
            app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False
        )
        await uvicorn.Server(config).serve()
        beating.cancel()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
