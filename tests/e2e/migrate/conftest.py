"""Fixtures of the docker-machine e2e tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dm_helpers import machine_host as _machine_host

from fixtures.devcloud import devcloud  # noqa: F401  (real OpenStack on 127.0.0.1)
from fixtures.docker_machine import MachineTLS


@pytest.fixture
def machine_host(ssh_host: Any, tmp_path: Path) -> tuple[Any, MachineTLS]:
    """A docker test host whose engine docker-machine's way serves TLS on 2376."""
    return _machine_host(ssh_host, tmp_path)
