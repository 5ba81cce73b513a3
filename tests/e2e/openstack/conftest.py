"""OpenStack driver tests: real Keystone/Glance/Nova/Neutron (devcloud), nothing patched.

The driver talks through openstacksdk; the checks go through an independent client,
python-openstackclient, run as a subprocess (``openstack server list -f json``...).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for fixtures.*

import fixtures.fault_proxy as _fault_proxy
from flotte.drivers import openstack_conn
from flotte.drivers.base import DriverContext, GroupSpec
from flotte.drivers.openstack import OpenStackDriver
from flotte.models import NodeSpec, Owner, Role
from flotte.pki import CertificateAuthority

fault_proxy_factory = _fault_proxy.fault_proxy_factory

try:  # the devcloud session fixture, once tests/fixtures/devcloud.py provides it
    from fixtures.devcloud import devcloud  # type: ignore[import-not-found]  # noqa: F401

    _HAVE_FIXTURE = True
except ImportError:
    _HAVE_FIXTURE = False

VENV_BIN = Path(sys.executable).parent
DEMO, ALT, ADMIN = "devcloud-demo", "devcloud-alt", "devcloud"
# Resources counted before and after each test that makes something.
KINDS = {
    "server": "server list",
    "port": "port list",
    "floating ip": "floating ip list",
    "security group": "security group list",
    "key pair": "keypair list",
    "network": "network list",
    "subnet": "subnet list",
    "router": "router list",
    "server group": "server group list",
}


def _default_clouds_yaml() -> Path:
    root = os.environ.get("FLOTTE_DEVCLOUD_DIR")
    if root:
        return Path(root) / "clouds.yaml"
    from flotte.devcloud.layout import default_dir

    return default_dir() / "clouds.yaml"


@dataclass
class Cloud:
    """devcloud as the tests see it, with python-openstackclient as the checker."""

    clouds_yaml: Path

    def env(self, cloud: str = DEMO) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds_yaml)
        env["OS_CLOUD"] = cloud
        return env

    def osc(self, *args: str, cloud: str = DEMO, check: bool = True) -> Any:
        """Run one ``openstack`` command; JSON output parsed."""
        argv = [str(VENV_BIN / "openstack"), *args]
        if "-f" not in args and args[-1] not in ("delete",):
            argv += ["-f", "json"]
        done = subprocess.run(
            argv, env=self.env(cloud), capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)}: {done.stderr.strip()}")
        out = done.stdout.strip()
        return json.loads(out) if out.startswith(("[", "{")) else out

    def osc_many(self, commands: list[str], cloud: str = DEMO) -> list[Any]:
        """Several commands in one openstackclient process (its interactive mode)."""
        script = "".join(f"{c} -f json\n" for c in commands)
        done = subprocess.run(
            [str(VENV_BIN / "openstack")],
            input=script,
            env=self.env(cloud),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,  # interactive mode may exit 1 at end of input; the output counts
        )
        decoder = json.JSONDecoder()
        text, pos, out = done.stdout, 0, []
        while len(out) < len(commands):
            while pos < len(text) and text[pos] not in "[{":
                pos += 1
            if pos >= len(text):
                raise AssertionError(f"openstack printed too little: {done.stderr[-500:]}")
            value, pos = decoder.raw_decode(text, pos)
            out.append(value)
        return out

    def inventory(self, cloud: str = DEMO) -> dict[str, set[str]]:
        """IDs (names for key pairs) of every countable resource the project sees."""
        results = self.osc_many(list(KINDS.values()), cloud)
        inv: dict[str, set[str]] = {}
        for kind, rows in zip(KINDS, results, strict=True):
            inv[kind] = {str(r.get("ID") or r.get("Id") or r.get("Name")) for r in rows}
        return inv


def new_items(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}


def leaked(cloud: Cloud, before: dict[str, set[str]], project: str = DEMO) -> dict[str, set[str]]:
    """Resources that appeared since ``before`` and stay.

    Other sessions may use the same devcloud project at the same time; what they make
    and delete comes and goes, a leak stays. Look again a few times before calling it one.
    """
    found = new_items(before, cloud.inventory(project))
    for _ in range(3):
        if not found:
            break
        time.sleep(4)
        again = new_items(before, cloud.inventory(project))
        found = {k: v & again.get(k, set()) for k, v in found.items() if v & again.get(k, set())}
    return found


def _reachable(clouds_yaml: Path, wait: float) -> bool:
    """True once devcloud's Keystone and Nova answer (another session may be restarting it)."""
    import urllib.request

    import yaml

    if not clouds_yaml.exists():
        return False
    entry = yaml.safe_load(clouds_yaml.read_text())["clouds"][DEMO]
    keystone = entry["auth"]["auth_url"]
    urls = [keystone, keystone.replace(":5000", ":8774").rsplit("/", 1)[0] + "/"]
    deadline = time.monotonic() + wait
    while True:
        try:
            for url in urls:
                urllib.request.urlopen(url, timeout=5).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(3)


@pytest.fixture(scope="session")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    if shutil.which("openstack", path=str(VENV_BIN)) is None:
        pytest.skip("python-openstackclient is not installed (pip install -e '.[test]')")
    if _HAVE_FIXTURE:
        info = request.getfixturevalue("devcloud")
        path = getattr(info, "clouds_yaml", None) or _default_clouds_yaml()
    else:
        path = _default_clouds_yaml()
        if not _reachable(path, wait=240.0):
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
        if old is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    # Providers (connections) are per process; tests change clouds.yaml and credentials.
    yield
    with openstack_conn._PROVIDERS_LOCK:
        providers = list(openstack_conn._PROVIDERS.values())
        openstack_conn._PROVIDERS.clear()
    for p in providers:
        p.conn.close()


@pytest.fixture(scope="session")
def image_id(cloud: Cloud) -> str:
    return str(cloud.osc("image", "show", "debian-12")["id"])


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


def cluster_group(name: str, installation: str, size: int, **options: Any) -> GroupSpec:
    return GroupSpec(
        name=name,
        owner=Owner(cluster=name, installation=installation),
        options=options,
        roles=("manager", "worker"),
        size=size,
    )


def machine_group(name: str, installation: str, **options: Any) -> GroupSpec:
    return GroupSpec(
        name=name, owner=Owner(machine=name, installation=installation), options=options
    )


def node_specs(group: GroupSpec, managers: int = 1) -> list[NodeSpec]:
    if group.owner.machine:
        return [NodeSpec(group.name, Role.MACHINE, group.owner, "openstack")]
    return [
        NodeSpec(
            f"{group.name}-{i}",
            Role.MANAGER if i < managers else Role.WORKER,
            group.owner,
            "openstack",
        )
        for i in range(group.size)
    ]


# openstacksdk 4.22 warns about its own internal use of deprecated helpers (e.g.
# find_flavor -> _compute_attributes, RemovedInSDK50Warning); nothing flotte can change.
# The same lines belong in pyproject's filterwarnings for every test touching the SDK.
# Likewise the API-level deprecations it reports while parsing responses (e.g. Nova's
# limits still carry maxPersonality: RemovedFieldWarning).
SDK_WARNINGS = (
    "ignore::openstack.warnings._RemovedInSDKWarning",
    "ignore::openstack.warnings.OpenStackDeprecationWarning",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for rule in SDK_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(rule))
