"""`flotte providers` and `flotte advise` end to end: output, formats, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

FLOTTE = Path(sys.executable).with_name("flotte")


def test_providers_list_filters(cli: Any) -> None:
    res = cli("providers", "list", "-f", "json")
    assert res.code == 0
    rows = json.loads(res.out)
    assert len(rows) == 16
    closed = json.loads(cli("providers", "list", "--status", "closed", "-f", "json").out)
    assert [(r["name"], r["status"]) for r in closed] == [("cloudwatt", "closed 2020-02-01")]
    academic = json.loads(cli("providers", "list", "--kind", "academic", "-f", "json").out)
    assert {r["name"] for r in academic} == {"cc-in2p3", "scigne", "virtualdata"}
    ec2 = json.loads(cli("providers", "list", "--api", "ec2", "-f", "json").out)
    assert {r["name"] for r in ec2} == {"aws", "cc-in2p3", "outscale"}


def test_providers_list_table(cli: Any) -> None:
    res = cli("providers", "list")
    assert res.code == 0
    assert "cloudwatt" in res.out and "closed 2020-02-01" in res.out


def test_providers_list_nothing_matches(cli: Any) -> None:
    res = cli("providers", "list", "--kind", "own", "--api", "ec2")
    assert res.code == 2
    assert res.err.startswith("Error: no provider matches --kind own --api ec2")
    assert (
        json.loads(cli("providers", "list", "--kind", "own", "--api", "ec2", "-f", "json").out)
        == []
    )


def test_providers_list_bad_filter(cli: Any) -> None:
    res = cli("providers", "list", "--kind", "public")
    assert res.code == 2
    assert res.err.strip() == (
        "Error: --kind 'public': choose from commercial, academic, federation, own"
    )


def test_providers_show_cites_sources(cli: Any) -> None:
    res = cli("providers", "show", "cloudwatt")
    assert res.code == 0
    assert "closed 2020-02-01" in res.out
    assert "(source ref-2026, 2026-11-01)" in res.out
    assert "8 VMs / 16 cores / 64 GB RAM for about 22 EUR a day" in res.out
    doc = yaml.safe_load(cli("providers", "show", "outscale", "-f", "yaml").out)
    assert doc["flavor_pattern"]["example"] == "tinav5.c2r4p2"
    assert doc["sources"]["talk-2018"]["as_of"] == "2018-06-06"
    assert doc["files"][0].endswith("outscale.yaml")
    assert doc["status"]["as_of"] == "2026-11-01"  # the source's date, spelled out
    price = doc["flavors"][1]["prices"][0]
    assert (price["source"], price["as_of"]) == ("talk-2018", "2018-06-06")


def test_providers_show_unknown(cli: Any) -> None:
    res = cli("providers", "show", "cloudwat")
    assert res.code == 2
    assert (
        res.err.strip() == "Error: no provider 'cloudwat' in the catalog (did you mean cloudwatt?)"
    )


def test_advise_table_2018(cli: Any) -> None:
    res = cli(
        "advise",
        "--nodes",
        "8",
        "--vcpus",
        "2",
        "--ram",
        "7",
        "--as-of",
        "2018",
        "--kind",
        "commercial",
    )
    assert res.code == 0
    lines = res.out.splitlines()
    assert lines[0] == "8 x 2 vCPU / 7 GB, as of 2018-12-31 (reference date 2018-12-31)"
    ranked = [line.split()[1] for line in lines[2:6]]
    assert ranked == ["ovh", "otc", "cloudwatt", "outscale"]
    assert "12.00" in lines[2] and "19.01" in lines[3]
    assert "--explain shows why" in res.out


def test_advise_json_and_explain(cli: Any) -> None:
    res = cli(
        "advise",
        "--nodes",
        "8",
        "--vcpus",
        "16",
        "--ram",
        "64",
        "--jurisdiction",
        "eu",
        "--no-cloud-act",
        "-f",
        "json",
    )
    assert res.code == 0
    doc = json.loads(res.out)
    assert doc["offers"] and all(o["cloud_act"] == "no" for o in doc["offers"])
    assert {"eur_node_hour", "eur_day", "eur_month", "price_date", "confidence"} <= set(
        doc["offers"][0]
    )
    assert any(e["provider"] == "aws" for e in doc["excluded"])
    explained = cli(
        "advise",
        "--nodes",
        "8",
        "--vcpus",
        "16",
        "--ram",
        "64",
        "--jurisdiction",
        "eu",
        "--no-cloud-act",
        "--explain",
    )
    assert "Excluded:" in explained.out
    assert "closed since 2020-02-01" in explained.out


def test_advise_warns_about_old_prices(cli: Any) -> None:
    res = cli("advise", "--nodes", "8", "--vcpus", "2", "--ram", "8", "--kind", "commercial")
    assert res.code == 0
    assert "warning: outscale tinav5.c2r8p2: price dates from 2018-06-06" in res.err
    outscale = next(line for line in res.out.splitlines() if " outscale " in line)
    assert outscale.split()[-2:] == ["old", "unclear"]
    doc = json.loads(cli("advise", "--nodes", "8", "--vcpus", "2", "--ram", "8", "-f", "json").out)
    row = next(o for o in doc["offers"] if o["provider"] == "outscale")
    assert (row["confidence"], row["old"], row["price_date"]) == ("estimate", True, "2018-06-06")


def test_advise_empty_result_says_why(cli: Any) -> None:
    res = cli(
        "advise",
        "--nodes",
        "4",
        "--vcpus",
        "8",
        "--ram",
        "32",
        "--gpu",
        "--jurisdiction",
        "de",
        "--kind",
        "commercial",
    )
    assert res.code == 1
    assert res.out == ""
    err = res.err.strip()
    assert err.count("\n") == 0
    assert err.startswith("Error: no offer for 4 x 8 vCPU / 32 GB + GPU")
    assert "jurisdiction filter" in err and "--explain lists each exclusion" in err
    as_json = cli(
        "advise",
        "--nodes",
        "4",
        "--vcpus",
        "8",
        "--ram",
        "32",
        "--gpu",
        "--jurisdiction",
        "de",
        "--kind",
        "commercial",
        "-f",
        "json",
    )
    assert as_json.code == 1
    assert json.loads(as_json.out)["explanation"].startswith("no offer for")


def test_advise_bad_numbers(cli: Any) -> None:
    res = cli("advise", "--vcpus", "0", "--ram", "8")
    assert (res.code, res.err.strip()) == (2, "Error: --vcpus must be at least 1 per node (got 0)")
    res = cli("advise", "--vcpus", "2", "--ram", "8", "--as-of", "last-year")
    assert res.code == 2 and "--as-of 'last-year'" in res.err
    res = cli("advise", "--vcpus", "two", "--ram", "8")
    assert res.code == 2 and "'two' is not a valid integer" in res.err


def test_invalid_user_file_stops_every_command_and_changes_nothing(cli: Any, home: Path) -> None:
    home.mkdir(parents=True)
    bad = home / "lab.yaml"
    bad.write_text("name: ovh\nflavors:\n  - name: b3-64\n    vcpus: many\n")
    before = sorted(p.relative_to(home.parent.parent) for p in home.parent.parent.rglob("*"))
    for args in (("providers", "list"), ("advise", "--vcpus", "2", "--ram", "8")):
        res = cli(*args)
        assert res.code == 2
        assert res.out == ""
        assert res.err.strip() == (
            f"Error: {bad}:4: provider ovh: flavors[5].vcpus: Input should be a valid integer, "
            "unable to parse string as an integer (got 'many')"
        )
    after = sorted(p.relative_to(home.parent.parent) for p in home.parent.parent.rglob("*"))
    assert after == before
    assert bad.read_text().endswith("vcpus: many\n")


def test_providers_validate(cli: Any, home: Path, tmp_path: Path) -> None:
    good = tmp_path / "deal.yaml"
    good.write_text(
        "name: ovh\nflavors:\n  - name: b3-64\n    prices:\n"
        "      - {eur_per_hour: 0.3, source: ovh-catalogue-2025}\n"
    )
    res = cli("providers", "validate", str(good))
    assert (res.code, res.out.strip()) == (0, f"ok {good}: ovh")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: ovh\nregions:\n  - {name: X, location: y, country: FRA}\n")
    res = cli("providers", "validate", str(bad))
    assert res.code == 2 and f"{bad}:3: provider ovh: regions[6].country:" in res.err
    assert cli("providers", "validate").out.startswith("no user catalog files in")
    home.mkdir(parents=True)
    (home / "deal.yaml").write_text(good.read_text())
    res = cli("providers", "validate")
    assert (res.code, res.out.strip()) == (0, f"ok {home / 'deal.yaml'}")
    res = cli("providers", "validate", str(tmp_path / "missing.yaml"))
    assert res.code == 2 and "no such file" in res.err


def test_installed_entry_point(home: Path) -> None:
    env = {**os.environ, "FLOTTE_HOME": str(home.parent.parent)}
    proc = subprocess.run(
        [str(FLOTTE), "advise", "--nodes", "8", "--vcpus", "2", "--ram", "8", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["offers"][0]["eur_day"] == 0
