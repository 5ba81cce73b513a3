"""Sharing a machine or a cluster with another computer: sealed bundles.

* :mod:`flotte.share.sealed`: authenticated encryption for a passphrase or a key;
* :mod:`flotte.share.bundle`: what a bundle holds and how it is installed.
"""

from __future__ import annotations

from flotte.share.bundle import Access, Bundle, SharedNode
from flotte.share.sealed import identity_key, recipient_key

__all__ = ["Access", "Bundle", "SharedNode", "identity_key", "recipient_key"]
