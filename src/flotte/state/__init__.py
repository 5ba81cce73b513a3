"""Recorded state: machines, clusters, templates and the journal, behind ``Store``."""

from flotte.state.store import Store

__all__ = ["Store"]
