"""The operations a fault campaign picks from, as the commands a user types."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fault_targets import Target

CLUSTER_OPS = (
    "cluster_create",
    "resize_up",
    "resize_down",
    "nodegroup_create",
    "nodegroup_update",
    "nodegroup_delete",
    "cluster_delete",
    "machine_create",
    "machine_rm",
)
# Existing hosts are few: clusters of two hosts, one more to grow onto.
SSH_OPS = ("cluster_create", "resize_up", "cluster_delete", "machine_create", "machine_rm")


@dataclass
class Op:
    name: str
    kind: str  # "cluster" or "machine"
    scope: str  # the cluster's or the machine's name
    command: list[str]  # what runs under the fault (and again, when it failed)
    creates: bool  # the command takes driver flags (a fault's flags go there)
    desired: dict[str, int] | None  # node group -> count (a machine: its name -> 1); None: gone
    setup: list[list[str]] = field(default_factory=list)
    teardown: list[list[str]] = field(default_factory=list)

    @property
    def cluster(self) -> str:
        return self.scope


def pick_op(rng: random.Random, target: Target, name: str) -> Op:
    ssh = target.name == "ssh"
    which = rng.choice(SSH_OPS if ssh else CLUSTER_OPS)
    flags = target.create_flags() + ([] if target.provision else ["--no-provision"])
    if which.startswith("machine"):
        where = ["--ssh-host", target.hosts[0].ip] if ssh else []  # type: ignore[attr-defined]
        create = ["machine", "create", "-d", target.name, *flags, *where, name]
        rm = ["machine", "rm", "-y", name]
        if which == "machine_create":
            return Op(which, "machine", name, create, True, {name: 1}, teardown=[rm])
        return Op(which, "machine", name, rm, False, None, setup=[create], teardown=[rm])

    workers = rng.randint(1, 2) if not ssh else 1
    hosts = target.host_flags(1 + workers) if ssh else []  # type: ignore[attr-defined]
    create = [
        "cluster",
        "create",
        name,
        "--driver",
        target.name,
        "--node-count",
        str(workers),
        *flags,
        *hosts,
    ]
    delete = ["cluster", "delete", name]
    base = {"default-master": 1, "default-worker": workers}
    if which == "cluster_create":
        return Op(which, "cluster", name, create, True, base, teardown=[delete])
    if which == "cluster_delete":
        return Op(which, "cluster", name, delete, False, None, [create], [delete])
    if which == "resize_up":
        more = 1 if ssh else rng.randint(1, 2)
        extra = ["--hosts", target.hosts[2].ip] if ssh else []  # type: ignore[attr-defined]
        resize = ["cluster", "resize", name, str(workers + more), *extra]
        wanted = {**base, "default-worker": workers + more}
        return Op(which, "cluster", name, resize, False, wanted, [create], [delete])
    if which == "resize_down":
        create[create.index("--node-count") + 1] = str(workers + 1)
        resize = ["cluster", "resize", name, str(workers - 1)]
        wanted = {**base, "default-worker": workers - 1}
        return Op(which, "cluster", name, resize, False, wanted, [create], [delete])
    group = ["cluster", "nodegroup"]
    count = rng.randint(1, 2)
    add = [*group, "create", name, "extra", "--node-count", str(count)]
    if which == "nodegroup_create":
        return Op(which, "cluster", name, add, True, {**base, "extra": count}, [create], [delete])
    if which == "nodegroup_update":
        new = rng.choice([c for c in (0, 1, 2, 3) if c != count])
        update = [*group, "update", name, "extra", "--node-count", str(new)]
        return Op(
            which, "cluster", name, update, False, {**base, "extra": new}, [create, add], [delete]
        )
    remove = [*group, "delete", name, "extra"]
    return Op(which, "cluster", name, remove, False, base, [create, add], [delete])
