"""A flotte create in a process of its own, so a contract test can SIGKILL it mid-way.

Usage: python child.py JOB.json (written by ``Rig.child``): check, prepare, create every
node at once (and provision them, for drivers whose nodes exist once provisioned).
It prints one line per step; the records it makes are never kept anywhere.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from flotte import drivers
from flotte.drivers.base import DriverContext, GroupSpec
from flotte.models import NodeSpec, Owner, Role
from flotte.pki import CertificateAuthority


async def main(job: dict) -> None:  # type: ignore[type-arg]
    home = Path(job["home"])
    ctx = DriverContext(
        home=home / "machines",
        ca=CertificateAuthority(home / "ca").ensure(),
        installation=job["installation"],
        options=job["options"],
        known_hosts=home / "known_hosts",
    )
    driver = drivers.get(job["driver"])(ctx)
    owner = Owner(**job["owner"])
    specs = [
        NodeSpec(
            n["name"],
            Role.WORKER,
            owner,
            job["driver"],
            n["options"],
            group=n["group"],
            index=n["index"],
            host=n["host"],
        )
        for n in job["nodes"]
    ]
    group = GroupSpec(
        name=owner.cluster or "", owner=owner, options=job["options"],
        roles=("cluster", "worker"), size=len(specs), nodes=tuple(specs),
    )  # fmt: skip
    await driver.check(group)
    print("checked", flush=True)
    shared = await driver.prepare(group)
    print("prepared", flush=True)
    records = await asyncio.gather(*(driver.create(s, shared) for s in specs))
    print("created", flush=True)
    if job["provision"]:
        await asyncio.gather(
            *(driver.provision(s, r, s.engine) for s, r in zip(specs, records, strict=True))
        )
        print("provisioned", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
