"""Run check + prepare + create of a cluster in its own process, so a test can SIGKILL it.

Usage: python os_child_create.py HOME INSTALLATION CLUSTER COUNT IMAGE_ID
(OS_CLIENT_CONFIG_FILE in the environment points at devcloud's clouds.yaml.)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flotte.drivers.base import DriverContext, GroupSpec
from flotte.drivers.openstack import OpenStackDriver
from flotte.models import NodeSpec, Owner, Role
from flotte.pki import CertificateAuthority


async def main(home: str, installation: str, cluster: str, count: int, image_id: str) -> None:
    ctx = DriverContext(
        home=Path(home) / "home",
        ca=CertificateAuthority(Path(home) / "ca"),
        installation=installation,
        options={
            "openstack_cloud": "devcloud-demo",
            "openstack_image_id": image_id,
            "openstack_flavor_id": "2",
            "openstack_net_name": "formation-net",
            "openstack_floatingip_pool": "ext-net",
        },
    )
    driver = OpenStackDriver(ctx)
    owner = Owner(cluster=cluster, installation=installation)
    group = GroupSpec(name=cluster, owner=owner, roles=("manager", "worker"), size=count)
    await driver.check(group)
    shared = await driver.prepare(group)
    print("prepared", flush=True)
    specs = [
        NodeSpec(f"{cluster}-{i}", Role.MANAGER if i == 0 else Role.WORKER, owner, "openstack")
        for i in range(count)
    ]
    await asyncio.gather(*(driver.create(s, shared) for s in specs))
    print("created", flush=True)


if __name__ == "__main__":
    home, installation, cluster, count, image_id = sys.argv[1:6]
    asyncio.run(main(home, installation, cluster, int(count), image_id))
