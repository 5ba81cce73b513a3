"""Shared test setup: the fixtures under ``tests/fixtures`` are plugins of every test.

Tests import by path (``--import-mode=importlib``, since drivers' test files share
names such as ``test_faults.py``), so the directories whose helper modules tests
import by name (``fixtures``, ``ssh_helpers``...) are put on ``sys.path`` here.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach past this machine: where a driver would ask an outside service for
# the caller's public address (ec2 without --ec2-allowed-cidr), it asks a closed port.
os.environ.setdefault("FLOTTE_CHECKIP_URL", "http://127.0.0.1:9/")

HERE = Path(__file__).resolve().parent
for directory in [HERE, *sorted(p for p in (HERE / "e2e").iterdir() if p.is_dir())]:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

pytest_plugins = [
    "fixtures.local",
    "fixtures.moto_server",
    "fixtures.fault_proxy",
    "fixtures.sshd_hosts",
    "fixtures.postgres",
]


# Tests that reach devcloud through request.getfixturevalue (not in fixturenames).
DEVCLOUD_PATHS = ("/tests/e2e/openstack/", "/tests/e2e/devcloud/", "/tests/e2e/serve/test_keystone")


# The fixtures that switch devcloud's compute to Docker-backed servers, Ironic or several
# hosts, and the modules that switch it through getfixturevalue or a fixture of their own.
MODE_FIXTURES = ("devcloud_docker", "devcloud_ironic", "devcloud_computes")
MODE_PATHS = ("/tests/e2e/serve/test_keystone",)


# Before the mark plugin's own hook, which selects on the marks added here (-m devcloud).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks for scripts/test's lanes, and the skip of long scenarios.

    devcloud is one OpenStack on fixed ports whose modes (fake or Docker-backed
    compute, Ironic) modules switch: every test that uses it is marked ``devcloud``,
    and those that switch its mode also ``devcloud_alone`` (as are, by hand, tests
    that measure time). scripts/test runs the devcloud tests in a lane of their own:
    first the others on its fake compute, two at a time (each worker in projects of
    its own: fixtures/devcloud_tenant.py), then the ``devcloud_alone`` ones one at a
    time.
    """
    long_skip = pytest.mark.skip(reason="a long devcloud scenario: FLOTTE_TEST_LONG=1 runs it")
    for item in items:
        if item.get_closest_marker("long") and not os.environ.get("FLOTTE_TEST_LONG"):
            item.add_marker(long_skip)
        path = str(item.path)
        # Some reach devcloud through request.getfixturevalue: known by path or id.
        dynamic = any(d in path for d in DEVCLOUD_PATHS) or (
            "/tests/contract/" in path and "openstack" in item.nodeid
        )
        names = getattr(item, "fixturenames", ())
        if dynamic or any(name.startswith("devcloud") for name in names):
            item.add_marker(pytest.mark.devcloud)
        if any(name in MODE_FIXTURES for name in names) or any(p in path for p in MODE_PATHS):
            item.add_marker(pytest.mark.devcloud_alone)


@pytest.fixture(autouse=True)
def _no_event_loop_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test that leaves an event loop marked running on the test thread.

    Such a loop makes every later asyncio test of the worker fail ("Cannot run the
    event loop while another loop is running"), far from its cause: CI's run of
    bef6733 lost four tests so. The mark is cleared so that the next tests run.
    """
    yield
    if "chromium" in request.fixturenames:
        return  # playwright's loop, marked running until its module ends (fixtures/browser.py)
    left = asyncio.events._get_running_loop()
    if left is not None:
        asyncio.events._set_running_loop(None)
        pytest.fail(f"the test left an event loop marked running on its thread: {left!r}")
