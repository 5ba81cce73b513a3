"""The provider catalog: facts, prices and sources, plus a pure advisor that ranks offers.

Public API for other layers (the CLI, ``cluster create --dry-run``, drivers):

- :func:`load_catalog` reads the shipped data and the user's overrides;
- :func:`estimate` prices ``count`` nodes of a shape on one provider;
- :func:`advise` ranks every provider for a request (see :mod:`flotte.catalog.advisor`).

Importing this package is cheap: pydantic and PyYAML load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .advisor import Advice, Request, advise
    from .costs import Estimate, estimate
    from .loader import Catalog, load_catalog
    from .models import Flavor, Provider, Region

__all__ = [
    "Advice",
    "Catalog",
    "Estimate",
    "Flavor",
    "Provider",
    "Region",
    "Request",
    "advise",
    "estimate",
    "load_catalog",
]

_HOME = {
    "Advice": "advisor",
    "Estimate": "costs",
    "Request": "advisor",
    "advise": "advisor",
    "estimate": "costs",
    "Catalog": "loader",
    "load_catalog": "loader",
    "Flavor": "models",
    "Provider": "models",
    "Region": "models",
}


def __getattr__(name: str) -> Any:
    # Lazy so `import flotte.catalog` in a driver costs nothing until used.
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'flotte.catalog' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
