"""The catalog schema: what one provider file may say, validated on load.

Every fact that can age (a price, a status, a CLOUD Act assessment, a
certification) names a ``source`` declared in the file's ``sources`` map, which
carries the date the source was read. A fact may carry its own ``as_of`` when it
is older or newer than its source (a 2018 figure quoted in a 2026 page).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

Kind = Literal["commercial", "academic", "federation", "own"]
Confidence = Literal["verified", "estimate", "old"]
Exposure = Literal["yes", "no", "unclear"]
State = Literal["active", "closed", "unknown"]
Driver = Literal["openstack", "ec2", "local", "ssh"]

#: API names a provider may expose; ``--api`` accepts these.
APIS = (
    "openstack",
    "ec2",
    "outscale",
    "ovh",
    "azure",
    "gcp",
    "occi",
    "docker",
    "ssh",
)
Api = Literal["openstack", "ec2", "outscale", "ovh", "azure", "gcp", "occi", "docker", "ssh"]

#: ISO 3166 alpha-2 codes of the European Union's member states (lower case).
_EU = "at be bg hr cy cz dk ee fi fr de gr hu ie it lv lt lu mt nl pl pt ro sk si es se"
EU_COUNTRIES = frozenset(_EU.split(" "))

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_COUNTRY = re.compile(r"^[a-z]{2}$")


class _Model(BaseModel):
    # Unknown keys are errors: a typo in a user file must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """Where facts come from and when the source was read or published."""

    title: str = Field(min_length=1)
    url: str | None = None
    as_of: date


class Sourced(_Model):
    """Base for a fact with provenance: a source key, an optional date, a confidence."""

    source: str = Field(min_length=1)
    as_of: date | None = None
    confidence: Confidence = "verified"
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _declared(cls, value: str, info: ValidationInfo) -> str:
        return _check_source(value, info)


class Status(Sourced):
    """Whether the provider can be used today; ``since`` dates a closure."""

    state: State
    since: date | None = None

    @model_validator(mode="after")
    def _closed_has_date(self) -> Status:
        if self.state == "closed" and self.since is None:
            raise ValueError("a closed provider needs 'since' (the closure date)")
        return self


class CloudAct(Sourced):
    """Exposure to the US CLOUD Act, with the reason, because it is rarely a plain yes/no."""

    exposure: Exposure
    reason: str = Field(min_length=1)


class Sovereignty(_Model):
    """Who controls the provider: legal jurisdiction, parent company, CLOUD Act exposure."""

    jurisdiction: str
    parent_company: str
    parent_country: str
    cloud_act: CloudAct

    @field_validator("jurisdiction", "parent_country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not _COUNTRY.match(value):
            raise ValueError(f"'{value}' is not a two-letter lower-case country code")
        return value


class Certification(Sourced):
    """A certification or qualification (SecNumCloud, C5, ISO 27001, HDS...) and its scope."""

    name: str = Field(min_length=1)
    scope: str | None = None


class Feature(Sourced):
    """A capability flag; ``available`` None means the sources do not say."""

    available: bool | None


class Features(_Model):
    """The capabilities the talk compares providers on."""

    image_upload: Feature
    bare_metal: Feature
    gpu: Feature
    managed_kubernetes: Feature
    registry: Feature


class Access(Sourced):
    """How to get an account; ``restricted`` marks eligibility rules (academic clouds)."""

    restricted: bool
    route: str = Field(min_length=1)


class Region(_Model):
    """A region or site; its country decides jurisdiction filters, overrides refine sovereignty."""

    name: str = Field(min_length=1)
    location: str
    country: str
    endpoint: str | None = None
    cloud_act: CloudAct | None = None
    certifications: list[str] = Field(default_factory=list)
    note: str | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not _COUNTRY.match(value):
            raise ValueError(f"'{value}' is not a two-letter lower-case country code")
        return value


class Price(Sourced):
    """A list price per node-hour in euros, excluding VAT; ``regions`` None means everywhere."""

    eur_per_hour: float = Field(ge=0)
    regions: list[str] | None = None

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        known = (info.context or {}).get("regions")
        if value and known is not None:
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(
                    f"unknown region(s) {', '.join(unknown)}; regions: {', '.join(sorted(known))}"
                )
        return value


class Flavor(_Model):
    """A machine shape. With ``custom`` the shape is chosen freely up to vcpus/ram_gb
    (academic quotas, your own machines); None limits mean the sources state none."""

    name: str = Field(min_length=1)
    vcpus: int | None = Field(default=None, gt=0)
    ram_gb: float | None = Field(default=None, gt=0)
    gpus: int = Field(default=0, ge=0)
    gpu_model: str | None = None
    arch: Literal["x86_64", "arm64"] = "x86_64"
    bare_metal: bool = False
    custom: bool = False
    note: str | None = None
    prices: list[Price] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sized(self) -> Flavor:
        if not self.custom and (self.vcpus is None or self.ram_gb is None):
            raise ValueError("a fixed flavor needs vcpus and ram_gb (or set custom: true)")
        return self


class FlavorPattern(_Model):
    """A naming rule for shapes the provider builds on demand (Outscale ``tinav5.c2r4p2``):
    a regex whose named groups ``vcpus`` and ``ram_gb`` give the size."""

    regex: str
    example: str
    source: str
    note: str | None = None

    @field_validator("source")
    @classmethod
    def _declared(cls, value: str, info: ValidationInfo) -> str:
        return _check_source(value, info)

    @model_validator(mode="after")
    def _compiles(self) -> FlavorPattern:
        try:
            compiled = re.compile(self.regex)
        except re.error as err:
            raise ValueError(f"regex does not compile: {err}") from err
        missing = {"vcpus", "ram_gb"} - set(compiled.groupindex)
        if missing:
            raise ValueError(f"regex lacks named group(s): {', '.join(sorted(missing))}")
        if not compiled.fullmatch(self.example):
            raise ValueError(f"example '{self.example}' does not match the regex")
        return self


class Capacity(Sourced):
    """Total resources one user can hope for (a site's size, your workstation)."""

    nodes: int | None = Field(default=None, gt=0)
    vcpus: int | None = Field(default=None, gt=0)
    ram_gb: float | None = Field(default=None, gt=0)


class Provider(_Model):
    """One catalog entry: a cloud, a site or a kind of own hardware."""

    schema_version: Literal[1] = 1
    name: str
    title: str = Field(min_length=1)
    kind: Kind
    summary: str = Field(min_length=1)
    apis: list[Api] = Field(min_length=1)
    driver: Driver | None = None
    talk_2018: str | None = None
    status: Status
    sovereignty: Sovereignty
    certifications: list[Certification] = Field(default_factory=list)
    features: Features
    access: Access
    capacity: Capacity | None = None
    regions: list[Region] = Field(min_length=1)
    flavors: list[Flavor] = Field(default_factory=list)
    flavor_pattern: FlavorPattern | None = None
    sources: dict[str, Source] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("use lower-case letters, digits and dashes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Provider:
        _unique("regions", [r.name for r in self.regions])
        _unique("flavors", [f.name for f in self.flavors])
        region_names = {r.name for r in self.regions}
        for fact in self._sourced():
            if fact.source not in self.sources:
                known = ", ".join(sorted(self.sources))
                raise ValueError(f"source '{fact.source}' is not declared in sources ({known})")
        if self.flavor_pattern and self.flavor_pattern.source not in self.sources:
            raise ValueError(f"source '{self.flavor_pattern.source}' is not declared in sources")
        for flavor in self.flavors:
            for price in flavor.prices:
                unknown = set(price.regions or ()) - region_names
                if unknown:
                    raise ValueError(
                        f"flavor {flavor.name}: price names unknown region(s) "
                        f"{', '.join(sorted(unknown))}"
                    )
        return self

    def _sourced(self) -> list[Sourced]:
        facts: list[Sourced] = [self.status, self.sovereignty.cloud_act, self.access]
        facts += self.certifications
        f = self.features
        facts += [f.image_upload, f.bare_metal, f.gpu, f.managed_kubernetes, f.registry]
        if self.capacity:
            facts.append(self.capacity)
        facts += [r.cloud_act for r in self.regions if r.cloud_act]
        facts += [p for fl in self.flavors for p in fl.prices]
        return facts

    def fact_date(self, fact: Sourced) -> date:
        """The date of a fact: its own ``as_of``, else its source's."""
        return fact.as_of or self.sources[fact.source].as_of

    def region(self, name: str) -> Region | None:
        """The region called ``name`` (case-insensitive), or None."""
        low = name.lower()
        return next((r for r in self.regions if r.name.lower() == low), None)

    def flavor(self, name: str) -> Flavor | None:
        """A listed flavor, or one built from ``flavor_pattern`` (unpriced), or None."""
        found = next((f for f in self.flavors if f.name == name), None)
        if found or not self.flavor_pattern:
            return found
        match = re.fullmatch(self.flavor_pattern.regex, name)
        if not match:
            return None
        return Flavor(
            name=name,
            vcpus=int(match["vcpus"]),
            ram_gb=float(match["ram_gb"]),
            note=f"built on demand ({self.flavor_pattern.note or 'naming rule'})",
        )

    def closed_at(self, when: date) -> bool:
        """True when the provider had closed on ``when``."""
        return (
            self.status.state == "closed"
            and self.status.since is not None
            and self.status.since <= when
        )


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: '{name}' appears twice")
        seen.add(name)


def _check_source(value: str, info: ValidationInfo) -> str:
    # The loader passes the file's source keys as context so the error lands on this line.
    known = (info.context or {}).get("sources")
    if known is not None and value not in known:
        raise ValueError(
            f"source '{value}' is not declared in sources ({', '.join(sorted(known))})"
        )
    return value
