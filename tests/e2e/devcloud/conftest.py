"""devcloud's own tests: the services it runs, through openstacksdk and the openstack CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/ on sys.path so that `fixtures.*` imports (no root conftest declares it yet).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fixtures.devcloud import devcloud, devcloud_docker  # noqa: F401

# openstacksdk 4.22 warns about its own use of deprecated helpers and fields it
# parses from responses; nothing devcloud can change.
SDK_WARNINGS = (
    "ignore::openstack.warnings._RemovedInSDKWarning",
    "ignore::openstack.warnings.OpenStackDeprecationWarning",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for rule in SDK_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(rule))
