"""Finding and deleting what flotte made on an EC2 cloud, by tag.

Deletion order matters on EC2: Elastic IPs are released first (a terminated instance
does not give its address back), instances are terminated and waited for (a security
group stays "in use" by their network interfaces until then), then volumes that outlived
their instances, key pairs, and the security group last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import Ec2Api, group_key
from flotte.errors import DriverError, TimeoutError_, UsageError
from flotte.models import Owner

LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
GONE_ADDRESS = (
    "InvalidAllocationID.NotFound",
    "InvalidAssociationID.NotFound",
    "InvalidAddress.NotFound",
)


def chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def instances(
    api: Ec2Api, tags: Mapping[str, str], states: list[str] | None = None
) -> list[dict[str, Any]]:
    """Instances carrying every tag in ``tags`` (live ones unless ``states`` says)."""
    reservations = await api.pages(
        "describe_instances",
        "Reservations",
        Filters=[
            *sh.tag_filters(dict(tags)),
            {"Name": "instance-state-name", "Values": states or LIVE},
        ],
    )
    return [i for r in reservations for i in r["Instances"]]


async def terminate(api: Ec2Api, ids: list[str]) -> None:
    # TerminateInstances takes up to 1,000 IDs: a 1,000-node delete is one call.
    for chunk in chunks(ids, 1000):
        try:
            await api.call("terminate_instances", InstanceIds=chunk)
        except UsageError:
            # One unknown ID fails the whole call: go one by one, ignoring gone ones.
            for iid in chunk:
                await api.call(
                    "terminate_instances",
                    ignore=("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"),
                    InstanceIds=[iid],
                )


async def release_address(api: Ec2Api, address: Mapping[str, Any]) -> None:
    association = address.get("AssociationId")
    if not association and "PublicIp" not in address:
        # Only the allocation ID is known (a node record): ask whether it is associated.
        found = await api.call(
            "describe_addresses", ignore=GONE_ADDRESS, AllocationIds=[address["AllocationId"]]
        )
        association = next(
            (a["AssociationId"] for a in found.get("Addresses", []) if a.get("AssociationId")),
            None,
        )
    if association:
        await api.call("disassociate_address", ignore=GONE_ADDRESS, AssociationId=association)
    await api.call("release_address", ignore=GONE_ADDRESS, AllocationId=address["AllocationId"])


async def owned(api: Ec2Api, owner: Owner) -> dict[str, list[dict[str, Any]]]:
    """Every live resource tagged for ``owner``, by kind (five describe calls at once)."""
    tags = owner.tags()
    filters = sh.tag_filters(tags)
    found_instances, volumes, addresses, keys, groups = await asyncio.gather(
        instances(api, tags),
        api.pages("describe_volumes", "Volumes", Filters=filters),
        api.call("describe_addresses", Filters=filters),
        api.call("describe_key_pairs", Filters=filters),
        api.pages("describe_security_groups", "SecurityGroups", Filters=filters),
    )
    return {
        "instance": found_instances,
        "volume": volumes,
        "elastic-ip": addresses.get("Addresses", []),
        "key-pair": keys.get("KeyPairs", []),
        "security-group": groups,
    }


def describe(found: Mapping[str, list[dict[str, Any]]]) -> list[str]:
    """One line per resource, e.g. ``instance i-0abc (running)``."""
    out = []
    for kind, items in found.items():
        for item in items:
            ident = (
                item.get("InstanceId")
                or item.get("VolumeId")
                or item.get("AllocationId")
                or item.get("KeyName")
                or item.get("GroupId")
            )
            state = (
                (item.get("State") or {}).get("Name") if kind == "instance" else item.get("State")
            )
            out.append(f"{kind} {ident}" + (f" ({state})" if state else ""))
    return sorted(out)


async def until_terminated(
    api: Ec2Api, tags: Mapping[str, str], timeout: float, poll: float
) -> None:
    deadline = time.monotonic() + timeout
    while await instances(api, tags):
        if time.monotonic() > deadline:
            raise TimeoutError_(
                f"instances tagged {dict(tags)} not terminated after {timeout:.0f} s"
            )
        await asyncio.sleep(poll)


async def delete_group(api: Ec2Api, group_id: str, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await api.call(
                "delete_security_group", ignore=("InvalidGroup.NotFound",), GroupId=group_id
            )
            return
        except DriverError as err:
            # Network interfaces of terminated instances linger for a while on AWS.
            if "DependencyViolation" not in str(err) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(poll)


async def sweep(
    api: Ec2Api, owner: Owner, home: Path, *, poll: float = 2.0, timeout: float = 600
) -> int:
    """Delete everything tagged for ``owner``, in dependency order; returns how many."""
    found = await owned(api, owner)
    tags = owner.tags()
    count = 0
    for address in found["elastic-ip"]:
        await release_address(api, address)
        count += 1
    if found["instance"]:
        alive = [
            i["InstanceId"] for i in found["instance"] if i["State"]["Name"] != "shutting-down"
        ]
        await terminate(api, alive)
        count += len(found["instance"])
        await until_terminated(api, tags, timeout, poll)
    volumes = await api.pages(
        "describe_volumes",
        "Volumes",
        Filters=[*sh.tag_filters(tags), {"Name": "status", "Values": ["available"]}],
    )
    for volume in volumes:
        await api.call(
            "delete_volume", ignore=("InvalidVolume.NotFound",), VolumeId=volume["VolumeId"]
        )
        count += 1
    for key in found["key-pair"]:
        await api.call("delete_key_pair", KeyName=key["KeyName"])
        count += 1
    await asyncio.to_thread(sh.forget_key, home / "keys" / group_key(owner) / "id_ed25519")
    for group in found["security-group"]:
        await delete_group(api, group["GroupId"], timeout, poll)
        count += 1
    return count
