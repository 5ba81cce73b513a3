"""Benchmark of the SSH provisioner: prints JSON.

Time to turn hosts that already run Docker into TLS Docker hosts (TLS files, dockerd
restart, TLS API answering from here, Docker context written): 1 host, then 8 hosts in
parallel, then the same 8 one at a time, in the same run and under the same load, so
the speed-up is a ratio of two figures taken side by side. Between rounds each host is
given back its own configuration (``unprovision``), so every round does the whole work.
Hosts are containers with a real sshd and dockerd (tests/fixtures/sshd_hosts.py);
everything made is removed at the end.

    .venv/bin/python bench/ssh_provision.py [--hosts 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

TARGETS = {"parallel_8_s": 10.0, "speedup_8": 4.0}


async def provision(host: Any, lab: Any, ca: Any, work: Path) -> float:
    from flotte import contexts
    from flotte.models import EngineOptions
    from flotte.provision.docker_host import provision_docker_host
    from flotte.provision.sessions import SSHTarget

    target = SSHTarget(host.ip, key=lab.key, known_hosts=work / "known_hosts")
    started = time.monotonic()
    await provision_docker_host(target, EngineOptions(labels=("bench=ssh",)), ca, host.name, [])
    contexts.write(host.name, f"tcp://{host.ip}:2376", ca, "flotte bench")
    return time.monotonic() - started


async def undo(hosts: list[Any], lab: Any, work: Path) -> None:
    from flotte.provision.docker_host import unprovision
    from flotte.provision.sessions import SSHTarget

    await asyncio.gather(
        *(
            unprovision(SSHTarget(h.ip, key=lab.key, known_hosts=work / "known_hosts"))
            for h in hosts
        )
    )


async def run(count: int, lab: Any, work: Path) -> dict[str, Any]:
    from flotte.pki import CertificateAuthority
    from flotte.provision.docker_host import provision_many

    ca = CertificateAuthority(work / "certs").ensure()
    hosts = [lab.start("docker") for _ in range(count)]
    out: dict[str, Any] = {"hosts": count}

    out["one_s"] = round(await provision(hosts[0], lab, ca, work), 2)
    await undo(hosts[:1], lab, work)

    started, cpu = time.monotonic(), time.process_time()
    results = await provision_many(
        {h.name: (lambda h=h: provision(h, lab, ca, work)) for h in hosts}
    )
    out[f"parallel_{count}_s"] = round(time.monotonic() - started, 2)
    out["parallel_client_cpu_s"] = round(time.process_time() - cpu, 2)  # flotte's own share
    failed = {k: str(v) for k, v in results.items() if not isinstance(v, float)}
    if failed:
        out["errors"] = failed
    await undo(hosts, lab, work)

    started = time.monotonic()
    per_host = [await provision(h, lab, ca, work) for h in hosts]
    out[f"serial_{count}_s"] = round(time.monotonic() - started, 2)
    out["serial_per_host_s"] = round(sum(per_host) / len(per_host), 2)
    out[f"speedup_{count}"] = round(out[f"serial_{count}_s"] / out[f"parallel_{count}_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    args = parser.parse_args()
    from fixtures.sshd_hosts import lab

    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="flotte-bench-ssh-") as tmp:
        work = Path(tmp)
        os.environ["DOCKER_CONFIG"] = str(work / "docker")  # contexts go here, not to ~
        with lab(work) as the_lab:
            result = asyncio.run(run(args.hosts, the_lab, work))
    result["targets"] = TARGETS
    result["load_avg_1m_before"] = load_before
    if args.hosts == 8:
        result["meets_targets"] = (
            result["parallel_8_s"] <= TARGETS["parallel_8_s"]
            and result["speedup_8"] >= TARGETS["speedup_8"]
        )
    # The machine may be shared: the load says how much the figures can be trusted.
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
