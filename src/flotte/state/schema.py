"""The schema revision this flotte writes, in a module light enough for any reader."""

HEAD = "0005"  # newest migration; checked cheaply so start-up skips Alembic when current
