"""A name several projects use: an admin means its own project's one, as in Horizon.

An admin's token lists every project's networks and security groups (each project has
its own ``default`` group), so ``--openstack-net-name formation-net`` as admin used to
answer "several networks": the admin could not use a name its own project holds.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import openstack.exceptions
import pytest
from os_helpers import ADMIN, ALT, DEMO, Cloud

from flotte.drivers.openstack import connection as openstack_conn
from flotte.drivers.openstack.lookups import find_network, find_security_group
from flotte.errors import UsageError


async def test_admin_means_its_own_projects_network(cloud: Cloud, make_driver: Any) -> None:
    name = f"twin-{uuid.uuid4().hex[:6]}"
    demo = cloud.connection(DEMO).network.create_network(name=name)
    alt = cloud.connection(ALT).network.create_network(name=name)
    mine = None
    try:
        admin = await openstack_conn.provider(make_driver(openstack_cloud=ADMIN).ctx.options)
        # two of that name, neither the admin's: which one is meant cannot be guessed
        with pytest.raises(UsageError) as err:
            await find_network(admin, name)
        assert f"several networks are named {name!r}" in str(err.value)
        assert "--openstack-net-id" in str(err.value)

        mine = cloud.connection(ADMIN).network.create_network(name=name)
        admin = await openstack_conn.provider(make_driver(openstack_cloud=ADMIN).ctx.options)
        assert (await find_network(admin, name)).id == mine.id
        # a project user sees its own one only, as before
        user = await openstack_conn.provider(make_driver(openstack_cloud=DEMO).ctx.options)
        assert (await find_network(user, name)).id == demo.id
        # every project has a security group named default: the admin gets its own
        group = await find_security_group(admin, "default")
        assert group.project_id == cloud.connection(ADMIN).current_project_id
    finally:
        for net, where in ((demo, DEMO), (alt, ALT), (mine, ADMIN)):
            if net is not None:
                with contextlib.suppress(openstack.exceptions.SDKException):
                    cloud.connection(where).network.delete_network(net.id)
