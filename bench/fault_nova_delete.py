"""How long Nova still shows a server it has deleted: the explanation of campaign seed 5071.

Seed 5071 (a node group update from 2 to 1 under 429s, exit 0) found the cloud holding
``extra-0`` and ``extra-1`` right after the command, flotte recording only ``extra-0``;
nothing of the run was left after its teardown, although that teardown never touched
``extra-1`` (its journal: ``remove:...-extra-1`` done at 15:32:57.9, the teardown's
removes of the four other nodes only). The server went away on its own: flotte had
deleted it and returned while Nova still listed it.

nova-compute deletes a server in two writes (``ComputeManager._delete_instance``): it
sets ``vm_state=DELETED`` and saves, then releases its resources
(``_complete_deletion``: the resource tracker under its lock, Placement's allocation,
console tokens, the scheduler's view) and only then destroys the row. In between,
``GET /servers/{id}`` answers the server with ``status: DELETED`` and ``GET
/servers/detail`` still lists it. flotte's wait for a deleted server
(``drivers/openstack/nodes.py``, ``_gone``) takes ``DELETED`` as gone, so it can return
inside that window.

This measures the window on devcloud with openstacksdk alone (no flotte): boot a server
in the campaign's project, delete it, then poll its GET and the project's listing every
50 ms until the GET answers 404. Prints one JSON object: per server, how long after the
DELETE the GET first said DELETED, how long it said so, and whether the listing still
held the server then. Measured on 1 Dec at load 15-50: 5 servers of 5 answered DELETED,
for 3.0 to 6.3 s, and were listed meanwhile. (Three `cluster resize 1 -> 0` runs on
devcloud then found the removed server gone when the command returned: flotte's steps
after the wait usually outlast the window, so this is a rare outcome, as in the
campaign.)

Usage: ``.venv/bin/python bench/fault_nova_delete.py --servers 5``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fault_openstack import DEMO, _connect


def _measure(conn: Any, flavor: str, image: str, network: str, name: str) -> dict[str, Any]:
    from openstack import exceptions as os_exc

    compute = conn.compute
    server = compute.create_server(
        name=name, flavor_id=flavor, image_id=image, networks=[{"uuid": network}]
    )
    try:
        compute.wait_for_server(server, status="ACTIVE", wait=300)
        compute.delete_server(server)
        start = time.monotonic()
        first_deleted: float | None = None
        last_deleted: float | None = None
        listed_while_deleted = 0
        polls = 0
        while time.monotonic() - start < 300:
            polls += 1
            try:
                seen = compute.get_server(server.id)
            except os_exc.NotFoundException:
                break
            if seen.status == "DELETED":
                now = time.monotonic() - start
                first_deleted = now if first_deleted is None else first_deleted
                last_deleted = now
                listed = [s.id for s in compute.servers(details=True, name=f"^{name}$")]
                listed_while_deleted += server.id in listed
            time.sleep(0.05)
        gone = time.monotonic() - start
    finally:
        compute.delete_server(server, ignore_missing=True)
    return {
        "seconds_to_404": round(gone, 2),
        "deleted_seen_at": None if first_deleted is None else round(first_deleted, 2),
        "deleted_for": (
            0.0 if first_deleted is None or last_deleted is None
            else round(last_deleted - first_deleted, 2)
        ),
        "listed_while_deleted": listed_while_deleted,
        "polls": polls,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=5)
    parser.add_argument("--tenant", default="faults")
    args = parser.parse_args()
    from fixtures.devcloud import MODE_LOCK, devcloud_dir
    from fixtures.machine_lock import machine_wide

    root = devcloud_dir()
    tenant = root / "test-tenants" / f"{args.tenant}.yaml"
    # The campaign's project, held as a campaign holds it; devcloud on fake compute.
    with machine_wide(f"fault-campaign-{args.tenant}"), machine_wide(MODE_LOCK, shared=True):
        conn = _connect(tenant, DEMO)
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        image = conn.image.find_image("debian-12", ignore_missing=False)
        network = conn.network.find_network("formation-net", ignore_missing=False)
        started = time.monotonic()
        runs = [
            _measure(conn, flavor.id, image.id, network.id, f"nova-delete-window-{i}")
            for i in range(args.servers)
        ]
    print(
        json.dumps(
            {
                "servers": len(runs),
                "with_deleted_status_seen": sum(
                    1 for r in runs if r["deleted_seen_at"] is not None
                ),
                "listed_while_deleted": sum(1 for r in runs if r["listed_while_deleted"]),
                "max_deleted_for": max((r["deleted_for"] for r in runs), default=0.0),
                "seconds": round(time.monotonic() - started, 1),
                "runs": runs,
            }
        )
    )


if __name__ == "__main__":
    main()
