"""The shipped catalog and user override files: schema, provenance, error lines."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from flotte.catalog import load_catalog
from flotte.catalog.loader import DATA_DIR
from flotte.errors import ConfigError, NotFound

TALK = {"ovh", "outscale", "cloudwatt", "otc", "cc-in2p3", "scigne", "virtualdata", "fg-cloud"}
TALK |= {"egi-fedcloud", "local", "machine-room", "pi-rack"}
TODAY = {"aws", "azure", "gcp", "s3ns"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_every_provider_of_the_talk_and_today_is_shipped(home: Path) -> None:
    catalog = load_catalog()
    assert set(catalog.providers) == TALK | TODAY
    # One file per provider, named after it.
    assert {p.stem for p in DATA_DIR.glob("*.yaml")} == TALK | TODAY


def test_every_fact_has_a_declared_source_and_a_date(home: Path) -> None:
    for p in load_catalog():
        facts = [p.status, p.sovereignty.cloud_act, p.access, *p.certifications]
        facts += [fl_price for fl in p.flavors for fl_price in fl.prices]
        for fact in facts:
            assert fact.source in p.sources, (p.name, fact)
            assert date(2018, 1, 1) <= p.fact_date(fact) <= date(2026, 12, 31)
            assert fact.confidence in ("verified", "estimate", "old")


def test_cloudwatt_stays_listed_as_closed(home: Path) -> None:
    cw = load_catalog().get("cloudwatt")
    assert cw.status.state == "closed"
    assert cw.status.since == date(2020, 2, 1)
    assert cw.closed_at(date(2026, 1, 1)) and not cw.closed_at(date(2018, 12, 31))


def test_outscale_entry_serves_the_ec2_driver(home: Path) -> None:
    osc = load_catalog().get("outscale")
    assert osc.driver == "ec2"
    assert {r.name for r in osc.regions} == {
        "eu-west-2",
        "cloudgouv-eu-west-1",
        "us-east-2",
        "us-west-1",
        "ap-northeast-1",
    }
    region = osc.region("cloudgouv-eu-west-1")
    assert region is not None and region.endpoint == "https://fcu.cloudgouv-eu-west-1.outscale.com"
    assert region.cloud_act is not None and region.cloud_act.exposure == "no"
    listed = osc.flavor("tinav5.c2r4p2")
    assert listed is not None and (listed.vcpus, listed.ram_gb) == (2, 4)
    built = osc.flavor("tinav7.c8r32p1")  # not listed: built from the naming rule
    assert built is not None and (built.vcpus, built.ram_gb) == (8, 32)
    assert osc.flavor("m5.large") is None


def test_sovereignty_is_more_than_a_boolean(home: Path) -> None:
    catalog = load_catalog()
    aws = catalog.get("aws").sovereignty
    assert (aws.jurisdiction, aws.parent_country, aws.cloud_act.exposure) == ("us", "us", "yes")
    ovh = catalog.get("ovh")
    assert ovh.sovereignty.cloud_act.exposure == "unclear"
    assert ovh.sovereignty.cloud_act.confidence == "estimate"
    assert any(c.name == "SecNumCloud" and c.scope for c in ovh.certifications)
    assert any(c.name == "BSI C5" for c in catalog.get("otc").certifications)


def test_own_hardware_costs_nothing(home: Path) -> None:
    for p in load_catalog():
        if p.kind == "own":
            assert p.flavors and all(pr.eur_per_hour == 0 for f in p.flavors for pr in f.prices)


def test_unknown_provider_suggests_close_names(home: Path) -> None:
    with pytest.raises(NotFound, match="did you mean outscale"):
        load_catalog().get("outscal")


def test_user_file_merges_onto_a_shipped_provider(home: Path) -> None:
    write(
        home / "negotiated.yaml",
        """
        name: ovh
        flavors:
          - name: b3-64
            prices:
              - {eur_per_hour: 0.2, source: contract, regions: [GRA]}
        sources:
          contract: {title: Lab framework contract, as_of: 2026-09-01}
        """,
    )
    catalog = load_catalog()
    ovh = catalog.get("ovh")
    b3 = ovh.flavor("b3-64")
    assert b3 is not None and [p.eur_per_hour for p in b3.prices] == [0.2]
    assert ovh.flavor("b3-8") is not None  # untouched flavors survive the merge
    assert len(ovh.regions) == 6
    assert catalog.origins["ovh"][-1].endswith("negotiated.yaml")


LAB = """
providers:
  - name: labcloud
    title: Our lab cloud
    kind: academic
    summary: The lab's own OpenStack
    apis: [openstack]
    driver: openstack
    status: {state: active, source: wiki}
    sovereignty:
      jurisdiction: fr
      parent_company: CNRS
      parent_country: fr
      cloud_act: {exposure: "no", reason: public body, source: wiki}
    features:
      image_upload: {available: true, source: wiki}
      bare_metal: {available: false, source: wiki}
      gpu: {available: false, source: wiki}
      managed_kubernetes: {available: false, source: wiki}
      registry: {available: false, source: wiki}
    access: {restricted: true, route: ask the lab IT team, source: wiki}
    regions: [{name: room-1, location: Strasbourg, country: fr}]
    flavors:
      - name: m1.xlarge
        vcpus: 16
        ram_gb: 64
        prices:
          - {eur_per_hour: 0, source: wiki}
    sources:
      wiki: {title: lab wiki, as_of: 2026-10-01}
"""


def test_user_file_adds_a_provider(home: Path) -> None:
    write(home / "lab.yaml", LAB)
    lab = load_catalog().get("labcloud")
    assert lab.kind == "academic" and lab.access.restricted


@pytest.mark.parametrize(
    ("bad", "good", "field", "message"),
    [
        ("vcpus: 16", "vcpus: 0", "flavors[0].vcpus", "greater than 0"),
        ("kind: academic", "kind: academc", "kind", "'academic'"),
        (
            "source: wiki}\n    sovereignty",
            "source: wkii}\n    sovereignty",
            "status.source",
            "not declared",
        ),
        ("ram_gb: 64", "ram_gb: 64\n        cpus: 3", "flavors[0].cpus", "Extra inputs"),
        ('exposure: "no"', "exposure: maybe", "sovereignty.cloud_act.exposure", "'unclear'"),
    ],
    ids=["too-small", "bad-choice", "undeclared-source", "unknown-key", "bad-exposure"],
)
def test_invalid_user_data_names_file_line_and_field(
    home: Path, bad: str, good: str, field: str, message: str
) -> None:
    # The line to expect is the one holding the replaced text's distinctive token.
    needle = next(tok for tok in ("vcpus: 0", "academc", "wkii", "cpus: 3", "maybe") if tok in good)
    path = write(home / "lab.yaml", LAB.replace(bad, good, 1))
    with pytest.raises(ConfigError) as info:
        load_catalog()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:")
    assert f": {field}: " in text and message in text
    bad_line = line_of(path, needle)
    assert f"{path}:{bad_line}:" in text


def test_yaml_syntax_error_gives_the_line(home: Path) -> None:
    path = write(home / "broken.yaml", "name: ovh\nflavors: [b3-64\nsources: {}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: invalid YAML"):
        load_catalog()


def test_unsafe_tags_are_refused(home: Path) -> None:
    path = write(home / "evil.yaml", "name: ovh\nsummary: !!python/object:os.system [echo]\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: invalid YAML: could not determine"):
        load_catalog()


def test_duplicate_keys_are_refused(home: Path) -> None:
    path = write(home / "dup.yaml", "name: ovh\nsummary: a\nsummary: b\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: summary: key appears twice"):
        load_catalog()


def test_a_price_naming_an_unknown_region_is_refused(home: Path) -> None:
    path = write(
        home / "ovh.yaml",
        """
        name: ovh
        flavors:
          - name: b3-64
            prices:
              - {eur_per_hour: 0.2, source: ovh-catalogue-2025, regions: [GRA, MARS1]}
        """,
    )
    with pytest.raises(ConfigError, match=rf"^{path}:5: .*regions: unknown region\(s\) MARS1"):
        load_catalog()


def test_a_new_provider_must_be_complete(home: Path) -> None:
    path = write(home / "half.yaml", "name: halfcloud\ntitle: Half\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: provider halfcloud: kind: Field required"):
        load_catalog()


def test_cache_follows_user_file_changes(home: Path) -> None:
    assert "labcloud" not in load_catalog().providers
    write(home / "lab.yaml", LAB)
    assert "labcloud" in load_catalog().providers
