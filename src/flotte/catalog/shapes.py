"""Shapes and prices of flavors: the pieces the advisor and the estimator share."""

from __future__ import annotations

from datetime import date
from typing import Any

from .models import Flavor, Price, Provider, Region


def fits(f: Flavor, vcpus: int, ram_gb: float, gpu: bool, bare_metal: bool = False) -> bool:
    """Does one node of ``f`` hold ``vcpus`` / ``ram_gb`` (a GPU, a whole server when asked)?"""
    if gpu and f.gpus < 1:
        return False
    if bare_metal and not f.bare_metal:
        return False
    if f.vcpus is not None and f.vcpus < vcpus:
        return False
    return f.ram_gb is None or f.ram_gb >= ram_gb


def flavor_key(price: Price, f: Flavor) -> tuple[Any, ...]:
    # Cheapest first; on a tie the smaller, GPU-less shape is the honest answer.
    return (price.eur_per_hour, f.gpus, f.vcpus or 0, f.ram_gb or 0, f.name)


def price_at(p: Provider, f: Flavor, region: Region, ref: date) -> Price | None:
    """The newest price of ``f`` in ``region`` dated on or before ``ref``; a price
    naming the region beats a catalogue-wide one of the same date."""
    best: Price | None = None
    best_key: tuple[date, bool] | None = None
    for price in f.prices:
        if price.regions is not None and region.name not in price.regions:
            continue
        when = p.fact_date(price)
        if when > ref:
            continue
        key = (when, price.regions is not None)
        if best_key is None or key > best_key:
            best, best_key = price, key
    return best


def largest(flavors: list[Flavor]) -> str:
    sized = [f for f in flavors if f.vcpus is not None and f.ram_gb is not None]
    if not sized:
        return "not stated"
    big = max(sized, key=lambda f: (f.vcpus or 0, f.ram_gb or 0))
    gpu = f" + {big.gpus} GPU" if big.gpus else ""
    return f"{big.name}: {big.vcpus} vCPU / {big.ram_gb:g} GB{gpu}"


def shape(fl: Flavor, vcpus: int, ram_gb: float) -> tuple[int, float]:
    # A fixed flavor's size is the catalog's; a custom one takes the size asked for.
    if fl.custom:
        return (vcpus or fl.vcpus or 0, ram_gb or fl.ram_gb or 0.0)
    return (fl.vcpus or vcpus, fl.ram_gb or ram_gb)
