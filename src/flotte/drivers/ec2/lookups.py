"""Finding what the user named on an EC2 cloud, checked once per driver: region,
instance type, image, network, allowed addresses, and what a launch needs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.batch import SingleFlight, gather_all
from flotte.drivers.ec2 import options as cfg
from flotte.drivers.ec2 import resources as sh
from flotte.drivers.ec2.connection import Clients, Ec2Api
from flotte.errors import DriverError, UsageError


class Lookups:
    """Answers that do not change during a command, asked once (groups share most)."""

    def __init__(self, conn: Clients) -> None:
        self.conn = conn
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._asking = SingleFlight()

    async def cached(self, key: tuple[Any, ...], make: Any) -> Any:
        """``make()``'s answer, asked once: callers that come while it is being asked
        wait for that answer (a check of 1,000 nodes asked DescribeImages 1,000 times).
        A failure is not kept: the next caller asks again."""
        if key in self._cache:
            return self._cache[key]
        value = self._cache[key] = await self._asking.once(key, make)
        return value

    # -- check and prepare -----------------------------------------------------------

    async def validate_region(self, api: Ec2Api, tgt: cfg.Target) -> None:
        if tgt.cloud != "custom" or tgt.region in cfg.aws_regions() | set(cfg.OUTSCALE_REGIONS):
            return
        try:
            found = await api.call("describe_regions", attempts=3)
            names = {r["RegionName"] for r in found.get("Regions", [])}
        except DriverError as err:
            raise UsageError(f"unknown region {tgt.region!r} at {tgt.endpoint_url}") from err
        if tgt.region not in names:
            raise UsageError(
                f"unknown region {tgt.region!r} at {tgt.endpoint_url}: "
                f"choose one of {', '.join(sorted(names))}"
            )

    async def instance_type(self, api: Ec2Api, tgt: cfg.Target, name: str) -> None:
        if not cfg.valid_instance_type(tgt.cloud, name):
            raise UsageError(f"unknown instance type {name!r}")
        if tgt.cloud == "outscale":
            return  # FCU has no DescribeInstanceTypes; RunInstances says no if wrong
        try:
            await api.call("describe_instance_types", InstanceTypes=[name])
        except UsageError as err:
            raise UsageError(f"unknown instance type {name!r} in {api.where}") from err
        except DriverError as err:
            if "InvalidAction" not in str(err) and "Unsupported" not in str(err):
                raise

    async def launch_inputs(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and resolve what a launch needs (cached: groups share most of it)."""
        tgt = self.conn.target(settings)
        api = self.conn.api(tgt)
        dflt = cfg.defaults(tgt.cloud)
        await self.cached(("region", tgt), lambda: self.validate_region(api, tgt))
        itype = settings.get("ec2_instance_type") or dflt["instance_type"]
        ami = settings.get("ec2_ami") or dflt["ami"]
        owner = settings.get("ec2_ami_owner") or (
            None if settings.get("ec2_ami") else dflt["ami_owner"]
        )
        _, image = await gather_all(
            self.cached(("type", tgt, itype), lambda: self.instance_type(api, tgt, itype)),
            self.cached(("ami", tgt, ami, owner), lambda: sh.resolve_ami(api, ami, owner)),
        )
        root = int(settings.get("ec2_root_size", 16))
        if root < 1 or root > 16384:
            raise UsageError(f"--ec2-root-size {root}: give a size in GB between 1 and 16384")
        extra = None
        if settings.get("ec2_user_data_file"):
            path = Path(settings["ec2_user_data_file"]).expanduser()
            try:
                extra = path.read_text()
            except OSError as err:
                raise UsageError(f"cannot read --ec2-user-data-file {path}: {err}") from err
        tags: dict[str, str] = {}
        for item in settings.get("ec2_tags") or ():
            key, sep, value = str(item).partition("=")
            if not sep or not key or key.startswith(("aws:", "flotte:")):
                raise UsageError(f"--ec2-tags {item!r}: give key=value (not aws:/flotte: keys)")
            tags[key] = value
        return {
            "target": tgt,
            "instance_type": itype,
            "image": image,
            "root_size": root,
            "volume_type": settings.get("ec2_volume_type") or "gp3",
            "user_data_extra": extra,
            "tags": tags,
            "ssh_user": settings.get("ec2_ssh_user") or dflt["ssh_user"],
        }

    async def network(
        self, api: Ec2Api, tgt: cfg.Target, settings: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        found: tuple[str, str | None] = await self.cached(
            (
                "net",
                tgt,
                settings.get("ec2_vpc_id"),
                settings.get("ec2_subnet_id"),
                settings.get("ec2_zone"),
            ),
            lambda: sh.resolve_network(
                api,
                settings.get("ec2_vpc_id"),
                settings.get("ec2_subnet_id"),
                settings.get("ec2_zone"),
                tgt.region,
            ),
        )
        return found

    async def cidrs(self, settings: Mapping[str, Any]) -> list[str]:
        given = list(settings.get("ec2_allowed_cidr") or ())
        if given:
            return sh.check_cidrs(given)
        url = os.environ.get("FLOTTE_CHECKIP_URL", cfg.CHECKIP_URL)
        found: str = await self.cached(
            ("cidr", url), lambda: asyncio.to_thread(sh.detect_address, url)
        )
        return [found]
