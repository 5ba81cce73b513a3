"""A name several projects use: an admin means its own project's one, as in Horizon.

An admin's token lists every project's networks and security groups (each project has
its own ``default`` group), so ``--openstack-net-name formation-net`` as admin used to
answer "several networks": the admin could not use a name its own project holds.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from os_helpers import ADMIN, ALT, DEMO, Cloud

from flotte.drivers.openstack import connection as openstack_conn
from flotte.drivers.openstack.lookups import find_network, find_security_group
from flotte.errors import UsageError


async def test_admin_means_its_own_projects_network(cloud: Cloud, make_driver: Any) -> None:
    name = f"twin-{uuid.uuid4().hex[:6]}"
    demo = cloud.osc("network", "create", name, cloud=DEMO)
    alt = cloud.osc("network", "create", name, cloud=ALT)
    mine = None
    try:
        admin = await openstack_conn.provider(make_driver(openstack_cloud=ADMIN).ctx.options)
        # two of that name, neither the admin's: which one is meant cannot be guessed
        with pytest.raises(UsageError) as err:
            await find_network(admin, name)
        assert f"several networks are named {name!r}" in str(err.value)
        assert "--openstack-net-id" in str(err.value)

        mine = cloud.osc("network", "create", name, cloud=ADMIN)
        admin = await openstack_conn.provider(make_driver(openstack_cloud=ADMIN).ctx.options)
        assert (await find_network(admin, name)).id == mine["id"]
        # a project user sees its own one only, as before
        user = await openstack_conn.provider(make_driver(openstack_cloud=DEMO).ctx.options)
        assert (await find_network(user, name)).id == demo["id"]
        # every project has a security group named default: the admin gets its own
        group = await find_security_group(admin, "default")
        admin_project = cloud.osc("token", "issue", cloud=ADMIN)["project_id"]
        assert group.project_id == admin_project
    finally:
        for net, where in ((demo, DEMO), (alt, ALT), (mine, ADMIN)):
            if net is not None:
                cloud.osc("network", "delete", net["id"], cloud=where, check=False)
