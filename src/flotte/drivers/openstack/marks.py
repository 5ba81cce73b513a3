"""How OpenStack resources say who owns them.

Ownership is written *in the create request itself*, so no crash can leave an
unmarked resource behind: Neutron resources carry a ``description`` marker
(``flotte:owner=<installation> flotte:cluster=<name>``, exact-match filterable);
servers carry the same pairs as Nova metadata. Key pairs and server groups have
neither, so their names encode the owner
(``flotte-<installation hash>-<owner hash>-<group>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from flotte.models import CLUSTER_KEY, MACHINE_KEY, OWNER_KEY, Owner


def marker(owner: Owner) -> str:
    """The description every Neutron resource of this owner carries (exact-match filter)."""
    return " ".join(f"{k}={v}" for k, v in owner.tags().items())


MARK_PREFIX = OWNER_KEY.split(":")[0] + ":"  # every mark's key starts with "flotte:"


def parse_pairs(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in (text or "").split():
        key, sep, value = word.partition("=")
        if sep and key.startswith(MARK_PREFIX):
            out[key] = value
    return out


def owned_by(pairs: Mapping[str, str], owner: Owner) -> bool:
    """True when ``pairs`` (metadata or a parsed marker) belong to ``owner`` or below it."""
    if not owner.installation or pairs.get(OWNER_KEY) != owner.installation:
        return False
    if owner.cluster and pairs.get(CLUSTER_KEY) != owner.cluster:
        return False
    return not (owner.machine and pairs.get(MACHINE_KEY) != owner.machine)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def name_prefix(owner: Owner) -> str:
    """Prefix of key pair / server group names: all of an installation, or one owner."""
    base = f"flotte-{_h(owner.installation)}-"
    if owner.cluster or owner.machine:
        who = f"{owner.cluster or ''}/{owner.machine or ''}"
        base += f"{_h(who)}-"
    return base


def owned_name(owner: Owner, group: str, suffix: str = "") -> str:
    return f"{name_prefix(owner)}{group}{suffix}"
