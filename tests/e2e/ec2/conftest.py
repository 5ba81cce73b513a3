"""EC2 tests: a real moto server over HTTP and the real boto3 client, nothing patched."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for fixtures.*

import fixtures.fault_proxy as _fault_proxy
import fixtures.moto_server as _moto
from flotte.drivers.base import DriverContext
from flotte.drivers.ec2 import EC2Driver
from flotte.pki import CertificateAuthority

# Until tests/conftest.py lists them in pytest_plugins, make the shared fixtures visible.
fake_aws_credentials = _moto.fake_aws_credentials
moto_server = _moto.moto_server
moto_endpoint = _moto.moto_endpoint
fault_proxy_factory = _fault_proxy.fault_proxy_factory

INSTALLATION = "inst-ec2-test"
# An Ubuntu AMI of moto's built-in catalogue (AMI validation is on).
AMI = "ami-785db401"
AMI_NAME = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"
AMI_OWNER = "099720109477"


def base_options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "ec2_endpoint_url": endpoint,
        "ec2_region": "us-east-1",
        "ec2_ami": AMI,
        "ec2_instance_type": "t3.small",
        "ec2_allowed_cidr": ["203.0.113.7/32"],
        **extra,
    }


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    """An independent boto3 client on the same moto server, to look at what exists."""
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def make_driver(tmp_path: Path, moto_endpoint: str) -> Callable[..., EC2Driver]:
    def make(endpoint: str | None = None, **options: Any) -> EC2Driver:
        ctx = DriverContext(
            home=tmp_path / "machines",
            ca=CertificateAuthority(tmp_path / "certs"),
            installation=INSTALLATION,
            options=base_options(endpoint or moto_endpoint, **options),
        )
        driver = EC2Driver(ctx)
        driver.poll_interval = 0.05
        return driver

    return make


def flotte_resources(client: Any, installation: str = INSTALLATION) -> dict[str, list[str]]:
    """Every resource tagged flotte:owner=installation that is not gone, by kind."""
    owner = [{"Name": "tag:flotte:owner", "Values": [installation]}]
    live = ["pending", "running", "stopping", "stopped", "shutting-down"]
    instances = [
        i["InstanceId"]
        for r in client.describe_instances(
            Filters=[*owner, {"Name": "instance-state-name", "Values": live}]
        )["Reservations"]
        for i in r["Instances"]
    ]
    return {
        "instances": instances,
        "volumes": [v["VolumeId"] for v in client.describe_volumes(Filters=owner)["Volumes"]],
        "addresses": [
            a["AllocationId"] for a in client.describe_addresses(Filters=owner)["Addresses"]
        ],
        "key_pairs": [k["KeyName"] for k in client.describe_key_pairs(Filters=owner)["KeyPairs"]],
        "security_groups": [
            g["GroupId"] for g in client.describe_security_groups(Filters=owner)["SecurityGroups"]
        ],
    }


def nothing_left(client: Any, installation: str = INSTALLATION) -> bool:
    return not any(flotte_resources(client, installation).values())
