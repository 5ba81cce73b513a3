"""devcloud's APIs take the requests OpenStack's own services send each other.

Nova lists a page of servers' ports from Neutron with one GET naming every server
(``device_id=...`` per server): past about 100 servers in a project the request line
outgrew gunicorn's default 4094 bytes, Neutron answered 414 and every server listing of
that project failed with a 500 (seen with a 100-node benchmark).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.devcloud import DevCloud


@pytest.fixture
def demo(devcloud: DevCloud) -> Iterator[Any]:
    conn = devcloud.connect(devcloud.demo_cloud)
    yield conn
    conn.close()


def test_a_port_query_naming_a_page_of_servers_is_answered(demo: Any) -> None:
    # 200 servers' ids: Nova's page size is up to 1000, each id adds 47 bytes
    query = "&".join(f"device_id={uuid.uuid4()}" for _ in range(200))
    assert len(query) > 4094
    answer = demo.network.get(f"/ports?{query}")
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["ports"] == []
