"""Recorded state: machines, clusters, node groups, templates and the journal.

``store.Store`` is the narrow interface; ``status`` holds the status words; ``records``
the typed values the store returns. Nothing is imported here, so the pure planner can
read the status words without loading SQLAlchemy.
"""
