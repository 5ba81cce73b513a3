"""OpenStack driver tests: real Keystone/Glance/Nova/Neutron (devcloud), nothing patched.

The driver talks through openstacksdk, with its own connections; the checks read the
cloud with openstacksdk connections of the test process (os_helpers.Cloud), made once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for fixtures.*

import fixtures.fault_proxy as _fault_proxy
from flotte.drivers.base import ClientPool, DriverContext
from flotte.drivers.openstack import OpenStackDriver
from flotte.drivers.openstack import connection as openstack_conn
from flotte.models import Owner
from flotte.pki import CertificateAuthority

fault_proxy_factory = _fault_proxy.fault_proxy_factory

from os_helpers import (  # noqa: E402
    DEMO,
    VENV_BIN,
    Cloud,
    default_clouds_yaml,
    proxied_clouds_yaml,
    reachable,
)

try:  # the devcloud session fixture, once tests/fixtures/devcloud.py provides it
    from fixtures.devcloud import devcloud  # type: ignore[import-not-found]  # noqa: F401

    _HAVE_FIXTURE = True
except ImportError:
    _HAVE_FIXTURE = False


@pytest.fixture(scope="session")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    if shutil.which("openstack", path=str(VENV_BIN)) is None:
        pytest.skip("python-openstackclient is not installed (pip install -e '.[test]')")
    if _HAVE_FIXTURE:
        info = request.getfixturevalue("devcloud")
        path = getattr(info, "clouds_yaml", None) or default_clouds_yaml()
    else:
        path = default_clouds_yaml()
        if not reachable(path, wait=240.0):
            done = subprocess.run(
                [sys.executable, "-m", "flotte.cli.main", "devcloud", "up"],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if done.returncode != 0 or not path.exists():
                pytest.skip(f"devcloud is not available: {done.stderr.strip()[-300:]}")
    c = Cloud(Path(path))
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(c.clouds_yaml)
    try:
        yield c
    finally:
        c.close()
        if old is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    # Providers made outside a driver (flotte image) are kept per process; tests change
    # clouds.yaml and credentials.
    yield
    openstack_conn._SHARED.close()


@pytest.fixture(scope="session")
def image_id(cloud: Cloud) -> str:
    return str(cloud.connection().image.find_image("debian-12", ignore_missing=False).id)


TALK_OPTIONS = {
    # The talk's docker-machine command, with devcloud's values.
    "openstack_flavor_id": "2",
    "openstack_net_name": "formation-net",
    "openstack_floatingip_pool": "ext-net",
    "openstack_ssh_user": "centos",
}


@pytest.fixture
def installation() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_driver(
    tmp_path: Path, installation: str, image_id: str, cloud: Cloud
) -> Iterator[Callable[..., OpenStackDriver]]:
    made: list[OpenStackDriver] = []
    clients = ClientPool()  # as the service does: one per installation, for every driver

    def make(**options: Any) -> OpenStackDriver:
        opts: dict[str, Any] = {
            "openstack_cloud": DEMO,
            "openstack_image_id": image_id,
            **TALK_OPTIONS,
        }
        opts.update(options)
        opts = {k: v for k, v in opts.items() if v is not None}
        home = tmp_path / "home"
        ctx = DriverContext(
            home=home,
            ca=CertificateAuthority(tmp_path / "ca"),
            installation=installation,
            options=opts,
            clients=clients,
        )
        driver = OpenStackDriver(ctx)
        made.append(driver)
        return driver

    yield make
    # Whatever a failed test left behind, by owner marker: the sweep is the safety net.
    for driver in made[:1]:
        try:
            asyncio.run(driver.sweep(Owner(installation=installation)))
        except Exception as err:  # report, but let the test's own failure show first
            print(f"sweep after the test failed: {err}")
    clients.close()


@pytest.fixture
def proxied(
    cloud: Cloud, tmp_path: Path, fault_proxy_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, _fault_proxy.FaultProxy, _fault_proxy.FaultProxy]:
    nova = fault_proxy_factory("http://127.0.0.1:8774")
    neutron = fault_proxy_factory("http://127.0.0.1:9696")
    name = f"devcloud-faulty-{tmp_path.name[-12:]}"
    monkeypatch.setenv(
        "OS_CLIENT_CONFIG_FILE", str(proxied_clouds_yaml(cloud, tmp_path, name, nova, neutron))
    )
    return name, nova, neutron
