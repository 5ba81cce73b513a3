"""Shared test setup: the fixtures under ``tests/fixtures`` are plugins of every test."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `fixtures.*`

pytest_plugins = ["fixtures.local"]
