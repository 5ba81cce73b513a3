"""The secret-free lifecycle of ``test_no_secret_anywhere`` on devcloud (real Keystone,
Nova, Neutron, Glance; fake compute, ``--no-provision``).

The secret searched for is the real password of the project's user, so a leak of the
credential flotte really used would be caught: kept in clouds.yaml in one variant, in
``OS_PASSWORD`` beside a clouds.yaml entry without it in the other (as the fault
campaign does, ``bench/fault_openstack.py``); AWS variables for another cloud are
planted too. Each xdist worker uses its own project (``fixtures/devcloud_tenant.py``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_no_secret_anywhere import assert_no_secret, lifecycle, make_flotte, planted

from fixtures.devcloud import DevCloud, devcloud  # noqa: F401 (the fixture, by name)
from fixtures.local import Flotte

FLAGS = [
    "--openstack-flavor-name", "m1.tiny",
    "--openstack-image-name", "debian-12",
    "--openstack-net-name", "formation-net",
    "--openstack-floatingip-pool", "ext-net",
    "--no-provision",
]  # fmt: skip


@pytest.mark.parametrize("where", ["clouds.yaml", "OS_PASSWORD"])
def test_openstack_lifecycle_keeps_the_real_password_out(
    devcloud: DevCloud,  # noqa: F811 (the fixture)
    tmp_path: Path,
    where: str,
) -> None:
    entry = devcloud.clouds()[devcloud.demo_cloud]
    password = str(entry["auth"]["password"])
    secrets = {**planted(uuid.uuid4().hex[:8]), "OS_PASSWORD": password}
    del secrets["OS_APPLICATION_CREDENTIAL_SECRET"]  # would choose another auth type
    bare = {**entry, "auth": {k: v for k, v in entry["auth"].items() if k != "password"}}
    clouds = tmp_path / "clouds.yaml"
    fd = os.open(clouds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump({"clouds": {"sec": entry, "sec-nopw": bare}}, handle)
    env = {
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
        "AWS_SESSION_TOKEN": secrets["AWS_SESSION_TOKEN"],
    }
    if where == "OS_PASSWORD":
        env.update(OS_CLOUD="sec-nopw", OS_PASSWORD=password)
    else:
        env.update(OS_CLOUD="sec")
    flotte = make_flotte(tmp_path, env)
    # The whole lifecycle once; the other place of the password reaches the same code
    # past authentication, so a lone machine's verbs are enough there (and save CI
    # minutes: each server change on devcloud takes seconds).
    runs = lifecycle(flotte, "openstack", FLAGS) if where == "clouds.yaml" else machine(flotte)
    assert_no_secret(flotte, secrets, runs)


def machine(flotte: Flotte) -> list[Any]:
    """Every verb of one lone machine, with ``--debug``; the results of every command."""
    name, d = f"sec{uuid.uuid4().hex[:6]}m", ["--debug"]
    verbs = [
        ("machine", "create", "-d", "openstack", *FLAGS, name),
        ("machine", "inspect", name),
        ("machine", "ls", "-f", "json"),
        ("machine", "stop", name),
        ("machine", "start", name),
        ("machine", "rm", "-y", name),
    ]
    runs = [flotte(*d, *argv) for argv in verbs]
    runs.append(flotte(*d, "machine", "inspect", name, check=False))  # its error line too
    return runs
