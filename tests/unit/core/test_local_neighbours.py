"""A local Swarm the kernel's neighbour table cannot hold is refused with the numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotte.drivers.local import neighbours
from flotte.errors import QuotaExceeded


def _limit(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "gc_thresh3"
    path.write_text(value)
    return path


def test_the_default_limit_holds_thirty_two_nodes_not_fifty(tmp_path: Path) -> None:
    path = _limit(tmp_path, "1024\n")
    neighbours.check(32, path)
    with pytest.raises(QuotaExceeded) as err:
        neighbours.check(50, path)
    text = str(err.value)
    assert "50-node" in text and "2500" in text and "allows 1024" in text
    assert "enough for 32 nodes" in text
    assert "gc_thresh3=5000" in text and "at most 32 nodes" in text
    assert "\n" not in text


def test_a_raised_limit_lets_fifty_through(tmp_path: Path) -> None:
    neighbours.check(50, _limit(tmp_path, "8192"))


def test_no_limit_to_read_is_no_refusal(tmp_path: Path) -> None:
    neighbours.check(500, tmp_path / "missing")
    neighbours.check(500, _limit(tmp_path, "not a number"))


def test_this_machines_limit_is_read() -> None:
    if not neighbours.GC_THRESH3.exists():
        pytest.skip("no /proc/sys/net/ipv4/neigh here")
    assert (neighbours.limit() or 0) > 0
