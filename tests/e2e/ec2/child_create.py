"""Run prepare + create_many in a separate process, so a test can SIGKILL it mid-way.

Usage: python child_create.py ENDPOINT HOME INSTALLATION CLUSTER COUNT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flotte.drivers.base import DriverContext, GroupSpec
from flotte.drivers.ec2 import EC2Driver
from flotte.models import NodeSpec, Owner, Role
from flotte.pki import CertificateAuthority


async def main(endpoint: str, home: str, installation: str, cluster: str, count: int) -> None:
    ctx = DriverContext(
        home=Path(home) / "machines",
        ca=CertificateAuthority(Path(home) / "certs"),
        installation=installation,
        options={
            "ec2_endpoint_url": endpoint,
            "ec2_region": "us-east-1",
            "ec2_ami": "ami-785db401",
            "ec2_instance_type": "t3.small",
            "ec2_allowed_cidr": ["203.0.113.7/32"],
        },
    )
    driver = EC2Driver(ctx)
    owner = Owner(cluster=cluster, installation=installation)
    group = GroupSpec(name=cluster, owner=owner, roles=("cluster", "manager", "worker"))
    shared = await driver.prepare(group)
    print("prepared", flush=True)
    specs = [NodeSpec(f"{cluster}-n{i}", Role.WORKER, owner, "ec2") for i in range(count)]
    await driver.create_many(specs, shared)
    print("created", flush=True)


if __name__ == "__main__":
    endpoint, home, installation, cluster, count = sys.argv[1:6]
    asyncio.run(main(endpoint, home, installation, cluster, int(count)))
