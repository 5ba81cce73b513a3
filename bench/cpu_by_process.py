"""Where the CPU goes while a command runs: CPU seconds by kind of process, as JSON.

Usage: ``python bench/cpu_by_process.py [--interval S] -- COMMAND...``

The suite must fit in 30 minutes on a 2-core machine; whether a lane waits on the CPU
and, if so, whose (devcloud's APIs, the ``openstack`` client, flotte's own CLI, the
nodes' engines) decides what to make faster. Every process on the machine is sampled
from ``/proc`` every ``--interval`` seconds; a process that ends between two samples
counts with its last sample, and one that lives less than an interval is missed, so
the figures are a lower bound (the total of ``/proc/stat`` is printed beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

# (kind, pattern on the command line), first match wins
KINDS: list[tuple[str, re.Pattern[str]]] = [
    (k, re.compile(p))
    for k, p in [
        ("nova-api", r"devcloud-nova\]|nova\.api|nova-api|osapi_compute"),
        ("nova-metadata", r"metadata"),
        ("nova-conductor", r"nova-conductor"),
        ("nova-scheduler", r"nova-scheduler"),
        ("nova-compute", r"nova-compute"),
        ("neutron-server", r"devcloud-neutron\]|neutron.*(wsgi|server|api)"),
        ("neutron-agents", r"neutron-"),
        ("keystone", r"keystone"),
        ("glance", r"glance"),
        ("placement", r"placement"),
        ("ironic", r"ironic"),
        ("mariadb", r"mysqld|mariadbd"),
        ("rabbitmq", r"beam|epmd|erl_child|rabbit"),
        ("openstack-cli", r"bin/openstack\b"),
        ("flotte-cli", r"flotte\.cli\.main|bin/flotte\b"),
        ("flotte-serve", r"flotte.* serve\b"),
        ("moto", r"moto"),
        ("pytest", r"pytest|xdist|execnet"),
        ("node-dockerd", r"dockerd.*--tlsverify|dockerd.*2376"),
        ("dockerd", r"dockerd"),
        ("containerd", r"containerd"),
        ("sshd", r"sshd"),
        ("docker-cli", r"^docker\b|/docker\b"),
        ("python-other", r"python"),
    ]
]


def kind_of(cmdline: str) -> str:
    for kind, pattern in KINDS:
        if pattern.search(cmdline):
            return kind
    return (cmdline.split(" ", 1)[0].rsplit("/", 1)[-1] or "?")[:24]


def sample(parents: dict[int, int] | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) for every process now; each one's parent goes
    into ``parents``."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if parents is not None:
            parents[int(entry.name)] = int(fields[1])
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        out[int(entry.name)] = (kind_of(cmdline.strip() or stat.split("(")[1].split(")")[0]), cpu)
    return out


def used_by_kind(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    pids: set[int] | None = None,
) -> dict[str, float]:
    """CPU seconds each kind of process used between two samples (of ``pids`` only, if
    given); a process may rename itself (gunicorn, setproctitle): the pid is what holds."""
    out: dict[str, float] = {}
    for pid, (kind, cpu) in after.items():
        used = cpu - (before[pid][1] if pid in before else 0.0)
        if used > 0 and (pids is None or pid in pids):
            out[kind] = out.get(kind, 0.0) + used
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return busy / TICK, (busy + v[3] + v[4]) / TICK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    base = sample()
    last = dict(base)
    busy0, all0 = machine_cpu()
    started = time.monotonic()
    proc = subprocess.Popen(command)
    ours = {proc.pid}  # the command and every process it started, once seen
    parents: dict[int, int] = {}

    def more() -> None:
        last.update(sample(parents))
        for pid in parents:
            chain: list[int] = []
            p = pid
            while p > 1 and p not in ours and len(chain) < 64:
                chain.append(p)
                p = parents.get(p, 0)
            if p in ours:
                ours.update(chain)

    while proc.poll() is None:
        time.sleep(args.interval)
        more()
    more()
    busy1, all1 = machine_cpu()
    by_kind, mine = used_by_kind(base, last), used_by_kind(base, last, ours)
    wall = time.monotonic() - started
    result = {
        "command": command,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "machine_busy_cpu_s": round(busy1 - busy0, 1),
        "machine_busy_share": round((busy1 - busy0) / max(all1 - all0, 1e-9), 3),
        "cores": os.cpu_count(),
        "sampled_cpu_s": round(sum(by_kind.values()), 1),
        "cpu_s_by_kind": {k: round(v, 1) for k, v in sorted(by_kind.items(), key=lambda x: -x[1])},
        # the command's own processes; shared services (devcloud's, dockerd) are above
        "command_cpu_s_by_kind": {
            k: round(v, 1) for k, v in sorted(mine.items(), key=lambda x: -x[1])
        },
        "interval_s": args.interval,
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
