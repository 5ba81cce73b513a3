"""The plan engine: a pure dependency graph, and an executor that walks it in parallel."""
