"""Constants and resource counting shared by the EC2 tests (imported by name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def ec2_flags(endpoint: str) -> list[str]:
    """The CLI's flags of ``base_options``' cloud (without the instance type)."""
    return [
        "--ec2-endpoint-url",
        endpoint,
        "--ec2-region",
        "us-east-1",
        "--ec2-ami",
        AMI,
        "--ec2-allowed-cidr",
        "203.0.113.7/32",
    ]


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


def node_instances(
    client: Any,
    cluster: str,
    home: Path,
    states: tuple[str, ...] = ("pending", "running", "stopped"),
) -> list[tuple[str, str]]:
    """(node name, instance ID) of each of ``cluster``'s instances in ``states``.

    A node is named by its ``flotte:node`` tag, else (launched with others) by the
    driver's launch journal under ``home``: its launch's ClientToken and its
    AmiLaunchIndex there. An instance neither names is listed as ``?ID``.
    """
    from flotte.drivers.ec2.journal import Journal, node_of
    from flotte.models import Owner

    found = [
        i
        for r in client.describe_instances(
            Filters=[
                {"Name": "tag:flotte:cluster", "Values": [cluster]},
                {"Name": "instance-state-name", "Values": list(states)},
            ]
        )["Reservations"]
        for i in r["Instances"]
    ]
    installations = {t["Value"] for i in found for t in i["Tags"] if t["Key"] == "flotte:owner"}
    entries = {}
    for installation in installations:
        owner = Owner(cluster=cluster, installation=installation)
        entries.update(Journal(home).entries(owner))
    return sorted((node_of(i, entries) or "?" + i["InstanceId"], i["InstanceId"]) for i in found)
