"""Record many lone machines and one big cluster on the fake driver, for the CLI figures
of bench/scale.py.

    FLOTTE_HOME=... FLOTTE_FAKE_DIR=... python bench/scale_seed.py MACHINES CLUSTER_NODES

The service's own use cases make one machine (``m0000``) and a cluster ``big`` of 3
managers and one worker, so their rows, secrets files and cloud records are exactly what
flotte writes. Then the rest is copied from them in bulk, in one transaction and one
write of the fake cloud's file: ``m0001``... and ``big-node-1``..., each with its own
provider id and address, and the cluster's worker count raised to match. Making 1,000
machines one use case at a time took 20 minutes on a loaded machine (the fake cloud's
file is reread for every node), which measures the seeding, not the listings.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

MANAGERS = 3
CLUSTER = "big"


async def _originals(svc: Any) -> None:
    from flotte.models import EngineOptions

    spec, secrets = svc.machines.spec("m0000", "fake", {}, EngineOptions(), no_provision=True)
    await svc.machines.create(spec, secrets)
    flags = {"fake_dir": os.environ["FLOTTE_FAKE_DIR"]} if "FLOTTE_FAKE_DIR" in os.environ else {}
    spec, secrets = svc.resolve(
        CLUSTER, driver="fake", master_count=MANAGERS, node_count=1, flags=flags, no_provision=True
    )
    await svc.clusters.create(spec, secrets)


def _copy(row: dict[str, Any], name: str, provider_id: str, address: str) -> dict[str, Any]:
    out = dict(row, name=name)
    record = json.loads(row["record"])
    record.update(name=name, provider_id=provider_id, addresses=[address])
    out["record"] = json.dumps(record)
    if row["cluster"] is None:  # a lone machine's spec names it
        out["spec"] = json.dumps({**json.loads(row["spec"]), "name": name})
    return out


def _address(serial: int) -> str:
    return f"10.{serial // 65536 % 256}.{serial // 256 % 256}.{serial % 256}"


def seed(machines: int, cluster_nodes: int) -> None:
    from flotte.service import Service

    svc = Service()
    asyncio.run(_originals(svc))
    database, fake_dir = svc.paths.database, svc.driver("fake")._dir()  # type: ignore[attr-defined]
    svc.close()

    cloud = json.loads((fake_dir / "cloud.json").read_text())
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    rows = {r["name"]: dict(r) for r in db.execute("SELECT * FROM machines")}
    copies = [(rows["m0000"], f"m{i:04d}") for i in range(1, machines)]
    worker = rows[f"{CLUSTER}-node-0"]
    copies += [
        (dict(worker, index=i), f"{CLUSTER}-node-{i}") for i in range(1, cluster_nodes - MANAGERS)
    ]
    new_rows = []
    for original, name in copies:
        resource = cloud["resources"][json.loads(original["record"])["provider_id"]]
        cloud["serial"] += 1
        provider_id, address = f"node-seed{cloud['serial']:06d}", _address(cloud["serial"])
        # the marks that name the original (node, and a lone machine's owner) name the copy
        tags = {k: name if v == original["name"] else v for k, v in resource["tags"].items()}
        cloud["resources"][provider_id] = dict(resource, name=name, address=address, tags=tags)
        new_rows.append(_copy(original, name, provider_id, address))
    with db:
        columns = list(worker)
        quoted = ", ".join(f'"{c}"' for c in columns)  # "group" is an SQL keyword
        db.executemany(
            f"INSERT INTO machines ({quoted}) VALUES ({', '.join('?' for _ in columns)})",
            [[r[c] for c in columns] for r in new_rows],
        )
        workers = cluster_nodes - MANAGERS
        db.execute("UPDATE clusters SET node_count = ? WHERE name = ?", (workers, CLUSTER))
        (spec,) = db.execute(
            "SELECT spec FROM nodegroups WHERE cluster = ? AND name = 'default-worker'", (CLUSTER,)
        ).fetchone()
        db.execute(
            "UPDATE nodegroups SET spec = ? WHERE cluster = ? AND name = 'default-worker'",
            (json.dumps({**json.loads(spec), "node_count": workers}), CLUSTER),
        )
    db.close()
    tmp = fake_dir / "cloud.json.seed"
    tmp.write_text(json.dumps(cloud))
    os.replace(tmp, fake_dir / "cloud.json")
    secrets = Path(svc.paths.secrets) / "machines"  # none unless a secret option was given
    for original_secret in secrets.glob("m0000*"):
        for i in range(1, machines):
            shutil.copy(
                original_secret, secrets / original_secret.name.replace("m0000", f"m{i:04d}")
            )


if __name__ == "__main__":
    seed(int(sys.argv[1]), int(sys.argv[2]))
