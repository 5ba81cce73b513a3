"""What the nodes of one group share on an EC2 cloud: network, security group, key pair.

Every resource made here carries the owner's tags (``flotte:owner``, ``flotte:cluster`` or
``flotte:machine``), and every ``ensure_*`` first looks for what a previous, maybe
killed, run made; so ``prepare`` can be repeated and ``sweep`` finds everything by tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import urllib.request
from pathlib import Path
from typing import Any

from flotte.drivers.ec2.connection import Ec2Api, group_key
from flotte.errors import FlotteError, UsageError
from flotte.models import Owner
from flotte.sshkeys import new_keypair

# Ports by role (a table, not code): open to the allowed CIDRs, or to group members only.
PUBLIC_PORTS: tuple[tuple[str, int], ...] = (("tcp", 22), ("tcp", 2376))
MEMBER_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    # Swarm mode: cluster management, node gossip, overlay network (VXLAN).
    "swarm": (("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)),
    # k3s: API server, flannel VXLAN, kubelet metrics.
    "k3s": (("tcp", 6443), ("udp", 8472), ("tcp", 10250)),
}
CLUSTER_ROLES = frozenset({"cluster", "manager", "worker"})


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_filters(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", []) or []}


def resource_name(owner: Owner) -> str:
    return f"flotte-{group_key(owner)}"


def detect_address(url: str, timeout: float = 5.0) -> str:
    """The caller's public IPv4 address as the cloud will see it, as a /32."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read(64).decode().strip()
        return f"{ipaddress.IPv4Address(text)}/32"
    except (OSError, ValueError) as err:
        raise UsageError(
            f"could not find your public address through {url}",
            hint="pass --ec2-allowed-cidr with the addresses allowed to reach SSH and Docker",
        ) from err


def check_cidrs(values: list[str]) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError as err:
            raise UsageError(
                f"--ec2-allowed-cidr {value!r} is not a CIDR like 192.0.2.0/24"
            ) from err
    return out


async def resolve_ami(api: Ec2Api, ami: str, owner: str | None) -> dict[str, Any]:
    """The image for ``ami``: an ID, or the newest image whose name matches a filter."""
    if ami.startswith("ami-") and "*" not in ami:
        try:
            images = (await api.call("describe_images", ImageIds=[ami])).get("Images", [])
        except UsageError as err:
            raise UsageError(f"AMI {ami} not found in {api.where}") from err
    else:
        params: dict[str, Any] = {"Filters": [{"Name": "name", "Values": [ami]}]}
        if owner:
            params["Owners"] = [owner]
        images = (await api.call("describe_images", **params)).get("Images", [])
    images = [i for i in images if i.get("State", "available") == "available"]
    if not images:
        raise UsageError(
            f"no AMI matches {ami!r}{f' (owner {owner})' if owner else ''} in {api.where}",
            hint="pass --ec2-ami with an image ID or name filter of this region",
        )
    image: dict[str, Any] = max(images, key=lambda i: i.get("CreationDate", ""))
    return image


async def resolve_network(
    api: Ec2Api, vpc_id: str | None, subnet_id: str | None, zone: str | None, region: str
) -> tuple[str, str | None]:
    """(vpc, subnet): given, or the region's default VPC (and EC2's pick of subnet)."""
    if zone and len(zone) == 1:
        zone = f"{region}{zone}"  # docker-machine's --amazonec2-zone a
    if subnet_id:
        try:
            subnets = (await api.call("describe_subnets", SubnetIds=[subnet_id]))["Subnets"]
        except UsageError as err:
            raise UsageError(f"subnet {subnet_id} not found in {api.where}") from err
        found = subnets[0]["VpcId"]
        if vpc_id and vpc_id != found:
            raise UsageError(f"subnet {subnet_id} is in {found}, not in --ec2-vpc-id {vpc_id}")
        return found, subnet_id
    if vpc_id:
        try:
            await api.call("describe_vpcs", VpcIds=[vpc_id])
        except UsageError as err:
            raise UsageError(f"VPC {vpc_id} not found in {api.where}") from err
    else:
        vpcs = (
            await api.call("describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])
        ).get("Vpcs", [])
        if not vpcs:
            raise UsageError(
                f"no default VPC in {api.where}", hint="pass --ec2-vpc-id and --ec2-subnet-id"
            )
        vpc_id = vpcs[0]["VpcId"]
        if not zone:
            return vpc_id, None  # EC2 picks the default subnet of some zone
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    if zone:
        filters.append({"Name": "availability-zone", "Values": [zone]})
    subnets = (await api.call("describe_subnets", Filters=filters)).get("Subnets", [])
    if not subnets:
        raise UsageError(f"no subnet in {vpc_id}{f' zone {zone}' if zone else ''}")
    best = max(subnets, key=lambda s: (s.get("DefaultForAz", False), s["AvailableIpAddressCount"]))
    return vpc_id, str(best["SubnetId"])


async def ensure_security_group(
    api: Ec2Api,
    owner: Owner,
    vpc_id: str,
    cidrs: list[str],
    roles: tuple[str, ...],
    coe: str | None,
) -> str:
    """The group's security group with only the ports its roles need."""
    tags = owner.tags()
    name = resource_name(owner)
    found = await api.call(
        "describe_security_groups",
        Filters=[*tag_filters(tags), {"Name": "vpc-id", "Values": [vpc_id]}],
    )
    groups = found.get("SecurityGroups", [])
    if groups:
        group_id = str(groups[0]["GroupId"])
    else:
        made = await api.call(
            "create_security_group",
            ignore=("InvalidGroup.Duplicate",),
            GroupName=name,
            Description=f"flotte {owner.cluster or owner.machine}: SSH, Docker TLS, members",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(tags)}],
        )
        if made:
            group_id = str(made["GroupId"])
        else:  # a retried create whose first answer was lost: it exists by name
            again = await api.call(
                "describe_security_groups",
                Filters=[
                    {"Name": "group-name", "Values": [name]},
                    {"Name": "vpc-id", "Values": [vpc_id]},
                ],
            )
            group_id = str(again["SecurityGroups"][0]["GroupId"])
    perms: list[dict[str, Any]] = [
        {
            "IpProtocol": proto,
            "FromPort": port,
            "ToPort": port,
            "IpRanges": [{"CidrIp": c, "Description": "flotte"} for c in cidrs if ":" not in c],
            "Ipv6Ranges": [{"CidrIpv6": c, "Description": "flotte"} for c in cidrs if ":" in c],
        }
        for proto, port in PUBLIC_PORTS
    ]
    if CLUSTER_ROLES.intersection(roles):
        for proto, port in MEMBER_PORTS.get(coe or "swarm", MEMBER_PORTS["swarm"]):
            perms.append(
                {
                    "IpProtocol": proto,
                    "FromPort": port,
                    "ToPort": port,
                    "UserIdGroupPairs": [{"GroupId": group_id}],
                }
            )
    # One call for all rules; on a re-run they exist already (Duplicate: nothing to do).
    await api.call(
        "authorize_security_group_ingress",
        eventual=True,
        ignore=("InvalidPermission.Duplicate",),
        GroupId=group_id,
        IpPermissions=perms,
    )
    return group_id


def _public_openssh(private: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    pub = private.with_name(private.name + ".pub")
    if pub.exists():
        return pub.read_text().strip()
    try:
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    except ValueError:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(private.read_bytes(), password=None)  # type: ignore[assignment]
    return (
        key.public_key()  # type: ignore[union-attr]
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


async def ensure_key_pair(
    api: Ec2Api,
    owner: Owner,
    home: Path,
    keypair_name: str | None,
    ssh_keypath: str | None,
) -> tuple[str, str, bool]:
    """(key pair name, private key path, made by flotte) for the group's instances."""
    if keypair_name:
        if not ssh_keypath:
            raise UsageError("--ec2-keypair-name needs --ec2-ssh-keypath (its private key)")
        try:
            await api.call("describe_key_pairs", KeyNames=[keypair_name])
        except UsageError as err:
            raise UsageError(f"key pair {keypair_name!r} not found in {api.where}") from err
        return keypair_name, str(Path(ssh_keypath).expanduser()), False
    name = resource_name(owner)
    tags = owner.tags()
    if ssh_keypath:
        private = Path(ssh_keypath).expanduser()
        if not private.exists():
            raise UsageError(f"--ec2-ssh-keypath {private} does not exist")
        public = await asyncio.to_thread(_public_openssh, private)
    else:
        private = home / "keys" / group_key(owner) / "id_ed25519"
        public = ""
    existing = await api.call("describe_key_pairs", Filters=tag_filters(tags))
    pairs = [p for p in existing.get("KeyPairs", []) if p.get("KeyName") == name]
    if pairs and private.exists():
        return name, str(private), True  # a previous run made both halves: adopt
    if pairs:  # ours, but its private half is gone: replace it
        await api.call("delete_key_pair", KeyName=name)
    if not public:
        public = await asyncio.to_thread(new_keypair, private)
    try:
        await api.call(
            "import_key_pair",
            ignore=("InvalidKeyPair.Duplicate",),  # a retried import whose answer was lost
            KeyName=name,
            PublicKeyMaterial=public.encode(),
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tag_list(tags)}],
        )
    except FlotteError:
        if not ssh_keypath:
            await asyncio.to_thread(forget_key, private)
        raise
    return name, str(private), True


def forget_key(private: Path) -> None:
    """Delete a generated key pair's files (the private half is a secret)."""
    for path in (private, private.with_name(private.name + ".pub")):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        private.parent.rmdir()


async def ensure_elastic_ip(api: Ec2Api, tags: dict[str, str], instance_id: str) -> dict[str, Any]:
    """The node's Elastic IP (found by its tags, else allocated), associated with it."""
    found = (await api.call("describe_addresses", Filters=tag_filters(tags))).get("Addresses", [])
    if found:
        address: dict[str, Any] = found[0]
        for extra in found[1:]:  # a retried allocation whose answer was lost
            await api.call("release_address", AllocationId=extra["AllocationId"])
    else:
        address = await api.call(
            "allocate_address",
            Domain="vpc",
            TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tag_list(tags)}],
        )
    if address.get("InstanceId") != instance_id:
        await api.call(
            "associate_address",
            eventual=True,
            AllocationId=address["AllocationId"],
            InstanceId=instance_id,
        )
    return address


# -- the WireGuard mesh's port ---------------------------------------------------------
MESH_DESCRIPTION = "flotte mesh"  # marks the rules this function owns


async def sync_mesh_ingress(api: Ec2Api, group_id: str, sources: list[str], port: int) -> None:
    """Make the group's mesh rules exactly UDP ``port`` from each of ``sources`` (the other
    mesh members' addresses, /32 or /128): missing ones authorized, those of members
    that left revoked. Only rules described ``flotte mesh`` are ever revoked."""
    found = await api.call("describe_security_groups", GroupIds=[group_id])
    have: set[str] = set()
    for perm in found["SecurityGroups"][0].get("IpPermissions", []):
        if perm.get("IpProtocol") != "udp" or perm.get("FromPort") != port:
            continue
        have |= {
            r["CidrIp"]
            for r in perm.get("IpRanges", [])
            if r.get("Description") == MESH_DESCRIPTION
        }
        have |= {
            r["CidrIpv6"]
            for r in perm.get("Ipv6Ranges", [])
            if r.get("Description") == MESH_DESCRIPTION
        }
    wanted = {str(ipaddress.ip_network(s, strict=False)) for s in sources}

    def perms(cidrs: set[str], *, described: bool) -> list[dict[str, Any]]:
        # revoke matches rules by address alone
        extra = {"Description": MESH_DESCRIPTION} if described else {}
        v4 = [{"CidrIp": c, **extra} for c in sorted(cidrs) if ":" not in c]
        v6 = [{"CidrIpv6": c, **extra} for c in sorted(cidrs) if ":" in c]
        return [
            {
                "IpProtocol": "udp",
                "FromPort": port,
                "ToPort": port,
                "IpRanges": v4,
                "Ipv6Ranges": v6,
            }
        ]

    if wanted - have:
        await api.call(
            "authorize_security_group_ingress",
            eventual=True,
            ignore=("InvalidPermission.Duplicate",),
            GroupId=group_id,
            IpPermissions=perms(wanted - have, described=True),
        )
    if have - wanted:
        await api.call(
            "revoke_security_group_ingress",
            ignore=("InvalidPermission.NotFound",),
            GroupId=group_id,
            IpPermissions=perms(have - wanted, described=False),
        )
