"""Refusing nodes that do not fit the account's limits, before anything is made.

Elastic IPs: ``DescribeAccountAttributes``' ``vpc-max-elastic-ips`` (AWS's default is
5 per region) against the addresses the account already holds plus one per node that
asks ``--ec2-elastic-ip``. Addresses already tagged for the nodes asked (a re-run of a
killed create) are theirs again, not more.

Instances are not counted here: ``max-instances`` of the same call is documented by
AWS as no longer supported ("does not reflect your actual vCPU limit"); the real
limit is a vCPU quota of Service Quotas, which EC2-API clouds other than AWS (and
moto) do not serve. A launch past it still fails whole, with AWS's
``VcpuLimitExceeded`` in one line, before any node is recorded.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import Ec2Api
from flotte.errors import QuotaExceeded
from flotte.models import NODE_KEY, OWNER_KEY


async def check_elastic_ips(api: Ec2Api, installation: str, asked: Collection[str]) -> None:
    """Refuse when ``asked`` (node names wanting an Elastic IP) do not fit, with the numbers."""
    if not asked:
        return
    found = await api.call("describe_account_attributes", AttributeNames=["vpc-max-elastic-ips"])
    limit = next(
        (
            int(v["AttributeValue"])
            for a in found.get("AccountAttributes", [])
            if a.get("AttributeName") == "vpc-max-elastic-ips"
            for v in a.get("AttributeValues", [])
            if str(v.get("AttributeValue", "")).isdigit()
        ),
        None,
    )
    if limit is None:  # not every EC2-API cloud answers it: the allocation will tell
        return
    addresses = (await api.call("describe_addresses")).get("Addresses", [])

    def theirs(address: dict[str, Any]) -> bool:
        tags = sh.tags_of(address)
        return tags.get(OWNER_KEY) == installation and tags.get(NODE_KEY) in asked

    held = sum(1 for a in addresses if not theirs(a))
    if held + len(asked) > limit:
        raise QuotaExceeded(
            f"{len(asked)} Elastic IPs asked (--ec2-elastic-ip), but {api.where} allows"
            f" {limit} (vpc-max-elastic-ips) and {held} are allocated: at most"
            f" {max(limit - held, 0)} more fit",
            hint="ask for fewer nodes with --ec2-elastic-ip, release addresses, or ask AWS"
            " for a higher Elastic IP quota",
        )
