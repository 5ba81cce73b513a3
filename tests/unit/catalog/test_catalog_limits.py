"""User catalog files are untrusted: bad dates, alias loops and bombs, huge values.

Each is refused in one line naming the file, the line and the field, in bounded time,
by the real ``flotte providers list`` (the in-process runner of this directory).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flotte.catalog import loader


def fanout(levels: int, width: int = 9) -> str:
    """YAML whose last alias stands for ``width ** levels`` values (under 700 bytes)."""
    lines = ["name: aws", f"x0: &a0 [{', '.join(['z'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"summary: *a{levels}")
    return "\n".join(lines) + "\n"


CASES = {
    "bad_date": (
        "name: aws\nsources:\n  aws-2026: {title: x, as_of: 2026-13-45}\n",
        ["bad_date.yaml:3", "sources.aws-2026.as_of", "'2026-13-45' is not a valid date"],
    ),
    "self_alias": (
        "name: aws\nsummary: &a [1, *a]\n",
        ["self_alias.yaml:2", "summary", "refers to the value that contains it"],
    ),
    "alias_bomb": (fanout(8), ["alias_bomb.yaml:", "more than 100000 values"]),
    "deep": (
        "name: aws\nsummary: " + "[" * 40 + "]" * 40 + "\n",
        ["deep.yaml:2", "summary", "nested more than 24 levels"],
    ),
    "long_value": (
        "name: aws\nsummary: " + "x" * 20_000 + "\n",
        ["long_value.yaml:2", "summary", "20000 characters"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_in_one_line_quickly(case: str, home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    text, words = CASES[case]
    home.mkdir(parents=True)
    (home / f"{case}.yaml").write_text(text)
    if case == "alias_bomb":
        assert len(text) < 700
    started = time.process_time()
    res = cli("providers", "list")
    cpu = time.process_time() - started
    assert res.code != 0
    assert "Traceback" not in res.err and res.err.count("\n") == 1, res.err
    for word in words:
        assert word in res.err, res.err
    assert cpu < 5, f"{cpu:.1f} s of CPU"


def test_a_20_mb_file_is_refused_before_it_is_read(home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    home.mkdir(parents=True)
    big = home / "big.yaml"
    with big.open("w") as f:
        f.write("name: aws\nsummary: ")
        f.write("y" * 20_000_000)
        f.write("\n")
    res = cli("providers", "list")
    assert res.code != 0 and res.err.count("\n") == 1
    assert "big.yaml" in res.err and f"at most {loader.MAX_FILE_BYTES} bytes" in res.err


def test_aliases_within_the_limits_still_work(home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    home.mkdir(parents=True)
    (home / "ok.yaml").write_text("name: aws\ntitle: &t AWS by alias\nsummary: *t\n")
    res = cli("providers", "show", "aws")
    assert res.code == 0, res.err
    assert res.out.count("AWS by alias") == 2
