"""``flotte image upload|list`` against devcloud's Glance, checked with openstacksdk."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import openstack.exceptions
from os_helpers import DEMO, Cloud

from fixtures.cli_zygote import run_cli


def flotte(cloud: Cloud, *args: str) -> subprocess.CompletedProcess[str]:
    env = cloud.env(DEMO)
    env.pop("OS_CLOUD")  # the flag below says which cloud; OS_CLOUD would too
    return run_cli([sys.executable, "-m", "flotte.cli.main", *args], env, 120)


def test_upload_list_and_reupload(cloud: Cloud, tmp_path: Path, installation: str) -> None:
    # Glance inspects what it gets: a raw disk must not look like qcow2 or anything else.
    disk = tmp_path / "tiny.img"
    disk.write_bytes(b"flotte test disk\n" * 64)
    name = f"flotte-e2e-{installation}"
    first = flotte(
        cloud, "image", "upload", str(disk), "--name", name, "--property", "os_distro=debian",
        "--openstack-cloud", DEMO, "-f", "json",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    image = json.loads(first.stdout)
    try:
        assert image["status"] == "active" and image["disk_format"] == "raw"
        shown = cloud.connection().image.get_image(image["id"])
        assert shown.name == name and shown.os_distro == "debian"
        # The same file again: the existing image is reused, not duplicated.
        again = flotte(cloud, "image", "upload", str(disk), "--name", name,
                       "--openstack-cloud", DEMO, "-f", "json")  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["id"] == image["id"]
        listed = flotte(cloud, "image", "list", "--openstack-cloud", DEMO, "-f", "json")
        assert listed.returncode == 0, listed.stderr
        assert [i["id"] for i in json.loads(listed.stdout) if i["name"] == name] == [image["id"]]
    finally:
        with contextlib.suppress(openstack.exceptions.SDKException):
            cloud.connection().image.delete_image(image["id"])


def test_rejected_upload_leaves_no_image(cloud: Cloud, tmp_path: Path, installation: str) -> None:
    # A file that claims to be qcow2 but is not: Glance's format check refuses it.
    disk = tmp_path / "fake.qcow2"
    disk.write_bytes(b"QFI\xfb" + bytes(1020))
    name = f"flotte-e2e-bad-{installation}"
    done = flotte(cloud, "image", "upload", str(disk), "--name", name, "--openstack-cloud", DEMO)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "415" in done.stderr
    assert list(cloud.connection().image.images(name=name)) == []


def test_bad_cloud_name_is_one_line(cloud: Cloud) -> None:
    done = flotte(cloud, "image", "list", "--openstack-cloud", "devcloud-dmo")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown cloud 'devcloud-dmo'" in lines[0]
    assert "devcloud-demo" in lines[0]
