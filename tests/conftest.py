"""Shared test setup: the fixtures under ``tests/fixtures`` are plugins of every test.

Tests import by path (``--import-mode=importlib``, since drivers' test files share
names such as ``test_faults.py``), so the directories whose helper modules tests
import by name (``fixtures``, ``ssh_helpers``...) are put on ``sys.path`` here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Tests never reach past this machine: where a driver would ask an outside service for
# the caller's public address (ec2 without --ec2-allowed-cidr), it asks a closed port.
os.environ.setdefault("FLOTTE_CHECKIP_URL", "http://127.0.0.1:9/")

HERE = Path(__file__).resolve().parent
for directory in [HERE, *sorted(p for p in (HERE / "e2e").iterdir() if p.is_dir())]:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

pytest_plugins = [
    "fixtures.local",
    "fixtures.moto_server",
    "fixtures.fault_proxy",
    "fixtures.sshd_hosts",
]
