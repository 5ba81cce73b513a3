"""Helpers of the SSH tests: real sshd hosts (see ``fixtures.sshd_hosts``), a CA, snapshots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for fixtures.*

import fixtures.sshd_hosts as _sshd
from fixtures.local import Flotte
from flotte.pki import CertificateAuthority
from flotte.provision.sessions import SSHTarget

# Visible here even before tests/conftest.py lists the module in pytest_plugins.
ssh_lab = _sshd.ssh_lab
ssh_host = _sshd.ssh_host

pytestmark = pytest.mark.docker


@pytest.fixture
def flotte(tmp_path: Path) -> Flotte:
    """A flotte installation of its own (FLOTTE_HOME), its own docker CLI config; what
    it makes is on the SSH hosts, not the local engine (``fixtures.local``'s sweeps)."""
    return Flotte.own(tmp_path)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "certs").ensure()


@pytest.fixture
def target(ssh_lab: _sshd.SSHLab, tmp_path: Path) -> Any:
    """``target(host, user="root", **SSHTarget fields)`` with the lab's key."""

    def make(test_host: _sshd.TestHost, /, user: str = "root", **kwargs: Any) -> SSHTarget:
        fields: dict[str, Any] = {
            "host": test_host.ip,
            "user": user,
            "key": ssh_lab.key,
            "known_hosts": tmp_path / "known_hosts",
            "attempts": 2,
            "backoff": 0.2,
            "connect_timeout": 5.0,
        }
        fields.update(kwargs)
        return SSHTarget(**fields)

    return make
