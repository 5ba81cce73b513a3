"""Finding and deleting what the local driver made for an owner, by label."""

from __future__ import annotations

from flotte.drivers.local.connection import Engine, listed, remove_container
from flotte.models import Owner


def owner_filters(owner: Owner) -> dict[str, list[str]]:
    return {"label": [f"{k}={v}" for k, v in owner.tags().items()]}


def leftovers(engine: Engine, owner: Owner) -> list[str]:
    """Containers, volumes and networks labelled for ``owner`` (blocking)."""
    client, filters = engine.docker, owner_filters(owner)
    found = [f"container {c['Names'][0].lstrip('/')}" for c in listed(client, owner.tags())]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=filters)]
    found += [f"network {n.name}" for n in client.networks.list(filters=filters)]
    return found


def sweep(engine: Engine, owner: Owner) -> int:
    """Delete them: containers first, then the volumes and networks they used (blocking)."""
    import docker.errors

    client, filters = engine.docker, owner_filters(owner)
    count = 0
    for c in listed(client, owner.tags()):
        count += remove_container(client, str(c["Id"]))
    for v in client.volumes.list(filters=filters):
        try:
            v.remove(force=True)
            count += 1
        except docker.errors.NotFound:
            pass
    for n in client.networks.list(filters=filters):
        try:
            n.remove()
            count += 1
        except docker.errors.NotFound:
            pass
    return count
