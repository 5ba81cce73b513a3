"""Shared test setup: the fixtures under ``tests/fixtures`` are plugins of every test.

Tests import by path (``--import-mode=importlib``, since drivers' test files share
names such as ``test_faults.py``), so the directories whose helper modules tests
import by name (``fixtures``, ``ssh_helpers``...) are put on ``sys.path`` here.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
