"""A command's driver flags come from each driver's options module alone: building
them no longer imports every driver (botocore, asyncssh, openstacksdk)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flotte import drivers

OWN = ["ec2", "local", "openstack", "ssh"]


@pytest.mark.parametrize("name", OWN)
def test_the_registered_options_are_the_drivers_own(name: str) -> None:
    assert drivers.options(name) is drivers.get(name).options
    assert drivers.hidden(name) is False


def test_a_driver_without_registered_options_is_read_from_its_class() -> None:
    fake = drivers.get("fake")
    assert drivers.options("fake") is fake.options
    assert drivers.hidden("fake") is True


def test_the_create_commands_flags_import_no_driver() -> None:
    probe = (
        "import json, sys\n"
        "from flotte.cli.common import driver_params\n"
        "flags = {f for p in driver_params() for f in p.opts}\n"
        "print(json.dumps({'flags': sorted(flags), 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout)
    flags, modules = set(seen["flags"]), set(seen["modules"])
    assert {"--openstack-flavor-name", "--ec2-instance-type", "--ssh-host"} <= flags
    assert {"--local-network", "--openstack-password-file"} <= flags
    heavy = {f"flotte.drivers.{d}.driver" for d in OWN} | {"botocore", "asyncssh", "openstack"}
    assert not heavy & modules, sorted(heavy & modules)
