"""Record many lone machines on the fake driver, for the CLI figures of bench/scale.py.

    FLOTTE_HOME=... FLOTTE_FAKE_DIR=... python bench/scale_seed.py COUNT

Goes through the service's own use case (``Machines.spec`` then ``create``, no
provisioning), a few dozen at once; one process instead of COUNT CLI starts.
"""

from __future__ import annotations

import asyncio
import sys


async def seed(count: int, at_once: int = 50) -> None:
    from flotte.models import EngineOptions
    from flotte.service import Service

    svc = Service()
    sem = asyncio.Semaphore(at_once)

    async def one(i: int) -> None:
        async with sem:
            spec, secrets = svc.machines.spec(
                f"m{i:04d}", "fake", {}, EngineOptions(), no_provision=True
            )
            await svc.machines.create(spec, secrets)

    await asyncio.gather(*(one(i) for i in range(count)))


if __name__ == "__main__":
    asyncio.run(seed(int(sys.argv[1])))
