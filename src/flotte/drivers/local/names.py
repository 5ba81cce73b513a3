"""Names of what the local driver makes on the engine, unique per installation.

Docker names are global to an engine: two installations (two ``FLOTTE_HOME``s, two
users, tests run in parallel) on one machine would collide on ``flotte-box``. Every
container, volume and cluster network therefore carries the installation's short id
(``flotte-box-3f2a9c1d``); the node's hostname stays its own name. What an older flotte
made without the id is still found (``legacy_container``) when its owner mark is ours.
"""

from __future__ import annotations

from flotte.models import OWNER_KEY

MACHINES_NETWORK = "flotte-machines"
LEGACY_OWNER_KEY = "flotte.owner"  # the Docker-label spelling flotte used before tags()


def short_id(installation: str) -> str:
    """The part of the installation id that names things (its first 8 characters)."""
    return installation[:8]


def _suffixed(base: str, installation: str) -> str:
    sid = short_id(installation)
    return f"{base}-{sid}" if sid else base


def container(node: str, installation: str) -> str:
    return _suffixed(f"flotte-{node}", installation)


def volume(node: str, installation: str) -> str:
    """The node's ``/var/lib/docker`` volume."""
    return f"{container(node, installation)}-docker"


def cluster_network(cluster: str, installation: str) -> str:
    return _suffixed(f"flotte-{cluster}", installation)


def machines_network(installation: str) -> str:
    """The network every lone machine of the installation shares."""
    return _suffixed(MACHINES_NETWORK, installation)


def legacy_container(node: str) -> str:
    """The name flotte gave a node's container before names carried the installation."""
    return f"flotte-{node}"


def legacy_volume(node: str) -> str:
    return f"flotte-{node}-docker"


def owned_by(labels: dict[str, str] | None, installation: str) -> bool:
    """True when these labels mark the installation as owner (either spelling)."""
    labels = labels or {}
    return installation != "" and installation in (
        labels.get(OWNER_KEY),
        labels.get(LEGACY_OWNER_KEY),
    )
