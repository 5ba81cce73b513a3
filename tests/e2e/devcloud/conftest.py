"""devcloud's own tests: the services it runs, through openstacksdk and the openstack CLI."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ on sys.path so that `fixtures.*` imports (no root conftest declares it yet).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fixtures.devcloud import devcloud, devcloud_docker, devcloud_ironic  # noqa: F401
