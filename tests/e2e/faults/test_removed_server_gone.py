"""A node that ``cluster resize`` removed is gone from Nova when the command returns.

The openstack campaign's seed 5071 (a node group update from 2 to 1, exit 0) found the
removed server still listed by Nova right after the command; it went away on its own
seconds later. nova-compute saves ``vm_state=DELETED`` before it releases the server's
resources and destroys its row; meanwhile Nova answers the server with ``status:
DELETED`` and still lists it. ``bench/fault_nova_delete.py`` measured that window on
devcloud: 3 to 6 s, in 5 deletes of 5. flotte's wait for a deleted server took
``DELETED`` as gone, so it returned inside the window (while the server still counts in
the project's quota and shows in ``openstack server list``).

Here a one-worker cluster is resized to no worker, and the project's servers are listed
at once with openstacksdk: only the master may be there.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from test_no_secret_anywhere import make_flotte
from test_no_secret_openstack import FLAGS

from fixtures.devcloud import DevCloud, devcloud  # noqa: F401 (the fixture, by name)


def test_a_removed_node_is_no_longer_listed_by_nova_when_resize_returns(
    devcloud: DevCloud,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    flotte = make_flotte(
        tmp_path,
        {"OS_CLIENT_CONFIG_FILE": str(devcloud.clouds_yaml), "OS_CLOUD": devcloud.demo_cloud},
    )
    name = f"gone{uuid.uuid4().hex[:6]}"
    conn = devcloud.connect()
    flotte("cluster", "create", name, "--driver", "openstack", "--node-count", "1", *FLAGS)
    try:
        flotte("cluster", "resize", name, "0")
        listed = {
            s.name: s.status
            for s in conn.compute.servers(details=True)
            if (s.metadata or {}).get("flotte:cluster") == name
        }
        assert listed == {f"{name}-master-0": "ACTIVE"}, listed
    finally:
        flotte("cluster", "delete", name, check=False)
        conn.close()
