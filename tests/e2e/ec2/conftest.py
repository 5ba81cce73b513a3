"""EC2 tests: a real moto server over HTTP and the real boto3 client, nothing patched."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for fixtures.*
# This directory, for ec2_helpers (pytest may import test files by path, not by package).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ec2_helpers import INSTALLATION, base_options

import fixtures.fault_proxy as _fault_proxy
import fixtures.moto_server as _moto
from flotte.drivers.base import DriverContext
from flotte.drivers.ec2 import EC2Driver
from flotte.pki import CertificateAuthority

# Until tests/conftest.py lists them in pytest_plugins, make the shared fixtures visible.
fake_aws_credentials = _moto.fake_aws_credentials
moto_server = _moto.moto_server
moto_endpoint = _moto.moto_endpoint
fault_proxy_factory = _fault_proxy.fault_proxy_factory


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    """An independent boto3 client on the same moto server, to look at what exists."""
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def make_driver(tmp_path: Path, moto_endpoint: str) -> Callable[..., EC2Driver]:
    def make(endpoint: str | None = None, **options: Any) -> EC2Driver:
        ctx = DriverContext(
            home=tmp_path / "machines",
            ca=CertificateAuthority(tmp_path / "certs"),
            installation=INSTALLATION,
            options=base_options(endpoint or moto_endpoint, **options),
        )
        driver = EC2Driver(ctx)
        driver.poll_interval = 0.05
        return driver

    return make
