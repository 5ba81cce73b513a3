"""Magnum's microversions: ``OpenStack-API-Version: container-infra 1.N`` (or
``latest``), refused with 406 outside [MIN, MAX]; every response says the range and
the version it was served at."""

from __future__ import annotations

import re
from typing import Any

from flotte.api.errors import ApiError

SERVICE = "container-infra"
MIN = (1, 1)
MAX = (1, 10)  # 1.7 resize, 1.8 upgrade, 1.9 node groups, 1.10 zero-node groups
HEADER = "openstack-api-version"
LEGACY = "x-openstack-magnum-api-version"
_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def negotiate(header: str | None) -> tuple[int, int]:
    """The version a request asks for (the minimum when it names none)."""
    if not header:
        return MIN
    value = header.strip()
    parts = value.split()
    if len(parts) == 2:
        if parts[0].lower() != SERVICE:
            return MIN  # a version for another service: not ours to judge
        value = parts[1]
    elif len(parts) != 1:
        raise ApiError(
            400, f"Invalid OpenStack-API-Version header {header!r}: send 'container-infra 1.N'"
        )
    if value.lower() == "latest":
        return MAX
    match = _VERSION.match(value)
    if not match:
        raise ApiError(400, f"Invalid API version {value!r}: use 1.N or latest")
    version = (int(match[1]), int(match[2]))
    if not MIN <= version <= MAX:
        raise ApiError(
            406,
            f"Version {value} was requested but is not supported: "
            f"the supported range is [{text(MIN)}, {text(MAX)}]",
        )
    return version


def headers(version: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    return [
        (b"openstack-api-minimum-version", f"{SERVICE} {text(MIN)}".encode()),
        (b"openstack-api-maximum-version", f"{SERVICE} {text(MAX)}".encode()),
        (b"openstack-api-version", f"{SERVICE} {text(version)}".encode()),
        (b"x-openstack-magnum-api-minimum-version", text(MIN).encode()),
        (b"x-openstack-magnum-api-maximum-version", text(MAX).encode()),
        (b"x-openstack-magnum-api-version", text(version).encode()),
        (b"vary", b"OpenStack-API-Version"),
    ]


def require(state: Any, version: tuple[int, int], what: str) -> None:
    """Refuse ``what`` (406) when the request asked for a version older than ``version``."""
    asked = getattr(state, "api_version", MAX)
    if asked < version:
        raise ApiError(
            406, f"{what} needs API version {text(version)} or later (asked: {text(asked)})"
        )


def document(base: str) -> dict[str, Any]:
    """``GET /``: the versions this server speaks."""
    return {
        "name": "OpenStack Magnum API (flotte serve)",
        "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        "versions": [v1_entry(base)],
        "default_version": v1_entry(base),
    }


def v1_entry(base: str) -> dict[str, Any]:
    return {
        "id": "v1",
        "status": "CURRENT",
        "min_version": text(MIN),
        "max_version": text(MAX),
        "links": [{"href": f"{base}/v1/", "rel": "self"}],
    }
