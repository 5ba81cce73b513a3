"""Flags, defaults and clouds of the EC2 driver, and how a boto3 client is made.

Two clouds speak the EC2 API here: AWS and 3DS Outscale (its FCU endpoint). Outscale's
region names overlap AWS's (``eu-west-2`` is London on AWS, Paris on Outscale), so the
cloud is chosen explicitly (``--ec2-cloud outscale``) or recognised from an
``--ec2-endpoint-url`` on ``outscale.com``; any other endpoint URL (moto in tests, an
OpenStack EC2 API) is taken as it is and asked for its regions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from flotte.drivers.base import DriverOption
from flotte.errors import UsageError

# Outscale regions (providers.md, V) and instance types: tinavV.cCrRpP = generation,
# vCores, GiB of RAM, performance class 1-3 (Outscale docs, V).
OUTSCALE_REGIONS = (
    "eu-west-2",
    "cloudgouv-eu-west-1",
    "us-east-2",
    "us-west-1",
    "ap-northeast-1",
)
OUTSCALE_TYPE = re.compile(r"^tinav[1-7]\.c[0-9]+r[0-9]+p[1-3]$")

# Debian 12 is the default image. AWS: Debian's own account publishes it (V, wiki.debian.org
# /Cloud/AmazonEC2Image). Outscale: official OMIs belong to the "Outscale" account alias and
# log in as "outscale" (E, from Outscale's docs; pass --ec2-ami/--ec2-ssh-user if it differs).
DEFAULTS: dict[str, dict[str, str]] = {
    "aws": {
        "region": "us-east-1",
        "instance_type": "t3.small",
        "ami": "debian-12-amd64-*",
        "ami_owner": "136693071363",
        "ssh_user": "admin",
    },
    "outscale": {
        "region": "eu-west-2",
        "instance_type": "tinav5.c2r4p2",
        "ami": "Debian-12-*",
        "ami_owner": "Outscale",
        "ssh_user": "outscale",
    },
}

CHECKIP_URL = "https://checkip.amazonaws.com"


def _opt(name: str, help: str, *aliases: str, **kw: Any) -> DriverOption:
    return DriverOption(name=name, help=help, aliases=aliases, **kw)


OPTIONS: tuple[DriverOption, ...] = (
    _opt(
        "ec2-cloud",
        "EC2-API cloud: aws or outscale (outscale derives the FCU endpoint from the region)",
        envvar="FLOTTE_EC2_CLOUD",
    ),
    _opt("ec2-region", "region", "amazonec2-region", envvar="AWS_DEFAULT_REGION"),
    _opt(
        "ec2-endpoint-url",
        "EC2 API endpoint (Outscale FCU, a test server)",
        "amazonec2-endpoint",
        envvar="AWS_ENDPOINT_URL_EC2",
    ),
    _opt("ec2-profile", "AWS profile (~/.aws/config)", "amazonec2-profile", envvar="AWS_PROFILE"),
    _opt("ec2-access-key", "access key ID", "amazonec2-access-key", secret=True),
    _opt("ec2-secret-key", "secret access key", "amazonec2-secret-key", secret=True),
    _opt("ec2-session-token", "session token", "amazonec2-session-token", secret=True),
    _opt(
        "ec2-secret-key-file",
        "file holding the secret access key (instead of --ec2-secret-key; or use "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --ec2-profile)",
    ),
    _opt(
        "ec2-ami",
        "AMI ID (ami-...) or name filter with * (newest match wins)",
        "amazonec2-ami",
        envvar="AWS_AMI",
        template_field="image_id",
    ),
    _opt("ec2-ami-owner", "owner account or alias for an AMI name filter"),
    _opt(
        "ec2-instance-type",
        "instance type",
        "amazonec2-instance-type",
        envvar="AWS_INSTANCE_TYPE",
        template_field="flavor_id",
    ),
    _opt(
        "ec2-vpc-id",
        "VPC (default: the region's default VPC)",
        "amazonec2-vpc-id",
        envvar="AWS_VPC_ID",
    ),
    _opt("ec2-subnet-id", "subnet", "amazonec2-subnet-id", envvar="AWS_SUBNET_ID"),
    _opt("ec2-zone", "availability zone letter or name", "amazonec2-zone", envvar="AWS_ZONE"),
    _opt(
        "ec2-allowed-cidr",
        "who may reach SSH and the Docker API (default: your public address)",
        multiple=True,
    ),
    _opt("ec2-root-size", "root volume size in GB", "amazonec2-root-size", default=16, type=int),
    _opt("ec2-volume-type", "root volume type", "amazonec2-volume-type", default="gp3"),
    _opt("ec2-ssh-user", "SSH user of the AMI", "amazonec2-ssh-user"),
    _opt(
        "ec2-ssh-keypath",
        "your private key to import (public key next to it, .pub)",
        "amazonec2-ssh-keypath",
    ),
    _opt(
        "ec2-keypair-name",
        "an existing key pair (needs --ec2-ssh-keypath)",
        "amazonec2-keypair-name",
    ),
    _opt("ec2-elastic-ip", "give each node an Elastic IP", is_flag=True, type=bool, default=False),
    _opt(
        "ec2-private-address-only",
        "use the private address (flotte runs inside the VPC)",
        "amazonec2-private-address-only",
        is_flag=True,
        type=bool,
        default=False,
    ),
    _opt("ec2-tags", "extra tags key=value", "amazonec2-tags", multiple=True),
    _opt("ec2-user-data-file", "your own cloud-init or script, run too", "amazonec2-userdata"),
    _opt("ec2-active-timeout", "seconds to wait for instances to run", default=300, type=int),
)


@dataclass(frozen=True)
class Target:
    """Where the API calls go: cloud, region, endpoint, credentials source."""

    cloud: str  # "aws" | "outscale" | "custom"
    region: str
    endpoint_url: str | None
    profile: str | None
    # How to authenticate, not where: one driver has one set of credentials, so a
    # target is the same whichever of these two carries them.
    credentials_file: str | None = field(compare=False)  # 0600 copy of keys, kept for rm
    # Keys given as flags or a file, in memory only until prepare() saves them.
    keys: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @property
    def where(self) -> str:
        return self.endpoint_url or f"AWS {self.region}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "profile": self.profile,
            "credentials_file": self.credentials_file,
        }


def _cloud(options: Mapping[str, Any]) -> str:
    endpoint = options.get("ec2_endpoint_url") or ""
    cloud = (options.get("ec2_cloud") or "").lower()
    if cloud and cloud not in ("aws", "outscale"):
        raise UsageError(f"unknown --ec2-cloud {cloud!r}: choose aws or outscale")
    if not cloud:
        host = urlsplit(endpoint).hostname or ""
        if host.endswith("outscale.com"):
            cloud = "outscale"
        elif endpoint:
            cloud = "custom"
        else:
            cloud = "aws"
    return cloud


@cache
def aws_regions() -> frozenset[str]:
    import botocore.session

    session = botocore.session.get_session()
    names: set[str] = set()
    for partition in ("aws", "aws-cn", "aws-us-gov", "aws-eusc"):
        names.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(names)


def profile_region(profile: str | None) -> str | None:
    """The region ~/.aws/config gives the profile (what the aws CLI would use), if any."""
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    session = botocore.session.Session(profile=profile)
    try:
        region: str | None = session.get_config_variable("region")
    except ProfileNotFound:
        return None  # reported with a clear line when the client is made
    return region


def defaults(cloud: str) -> dict[str, str]:
    return DEFAULTS["outscale" if cloud == "outscale" else "aws"]


def target(options: Mapping[str, Any], *, default_region: str | None = None) -> Target:
    """Resolve cloud, region and endpoint from options; unknown regions fail here, offline."""
    cloud = _cloud(options)
    region = options.get("ec2_region") or default_region
    if not region and cloud == "aws":
        region = profile_region(options.get("ec2_profile"))
    region = region or defaults(cloud)["region"]
    endpoint = options.get("ec2_endpoint_url") or None
    if cloud == "outscale":
        if region not in OUTSCALE_REGIONS:
            raise UsageError(
                f"unknown Outscale region {region!r}: choose one of {', '.join(OUTSCALE_REGIONS)}"
            )
        endpoint = endpoint or f"https://fcu.{region}.outscale.com"
    elif cloud == "aws" and region not in aws_regions():
        raise UsageError(
            f"unknown AWS region {region!r}",
            hint="see `aws ec2 describe-regions`; for another EC2-API cloud pass --ec2-endpoint-url",
        )
    return Target(
        cloud=cloud,
        region=region,
        endpoint_url=endpoint,
        profile=options.get("ec2_profile") or None,
        credentials_file=options.get("ec2_credentials_file") or None,
        keys=tuple(options.get("ec2_keys") or ()),
    )


def valid_instance_type(cloud: str, name: str) -> bool:
    """Offline shape check; AWS types are then confirmed by DescribeInstanceTypes."""
    if cloud == "outscale":
        # Outscale also maps some AWS names (m4.large...) onto tina types.
        return bool(OUTSCALE_TYPE.match(name) or re.match(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$", name))
    return bool(re.match(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", name))


def target_options(shared: Mapping[str, Any], prefix: str = "ec2_") -> dict[str, Any]:
    """The target recorded in ``shared`` as option keys (or as plain keys for node data)."""
    keys = {
        "cloud": "ec2_cloud",
        "region": "ec2_region",
        "endpoint_url": "ec2_endpoint_url",
        "profile": "ec2_profile",
        "credentials_file": "ec2_credentials_file",
    }
    out: dict[str, Any] = {}
    for key, option in keys.items():
        if shared.get(key):
            out[option if prefix else key] = shared[key]
    if prefix and out.get("ec2_cloud") == "custom":
        out.pop("ec2_cloud")
    return out
