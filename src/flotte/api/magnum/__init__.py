"""Magnum API v1: one module per resource, request models in ``models``, JSON views in
``views``, lookups by name or UUID in ``lookup``."""
