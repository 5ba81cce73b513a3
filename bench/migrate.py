"""Benchmark moving in from docker-machine and sharing bundles; prints one JSON object.

- ``read_store_ms``: ``read_store`` over a docker-machine store of ``--machines``
  generic machines written in docker-machine's format (parse, check each machine's
  certificates), median; ``per_machine_ms`` is that divided by the count;
- ``install_ms``: copying one machine's TLS material and key into flotte's directory;
- ``seal_passphrase_ms`` / ``open_passphrase_ms``: a one-machine bundle sealed and
  opened with a passphrase (scrypt n=2^15, r=8, p=1 is most of it);
- ``seal_recipient_ms`` / ``open_recipient_ms``: the same for an ssh-ed25519 key;
- ``import_cli_ms``: ``flotte machine import --from-docker-machine`` of the whole store
  by a fresh process into an empty installation (records, secrets, contexts), median;
  ``import_rerun_ms``: the same command again, where everything is already imported;
  ``*_cpu_ms``: the CPU time of those processes (the machine is shared: wall time
  grows with the load, CPU time much less);
- ``completion_ms``: ``flotte machine rm <TAB>`` answered by a fresh ``flotte``
  process (click's bash protocol) over an installation of the same machines;
  ``python_startup_ms`` is the bare interpreter, to show how loaded the machine was.

Usage: ``.venv/bin/python bench/migrate.py [--machines N] [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.docker_machine import generic_driver, make_tls, write_machine
from flotte.migrate import read_store
from flotte.share import Access, Bundle, SharedNode, identity_key, recipient_key


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def child_cpu_ms(fn: Callable[[], object], runs: int) -> float:
    """CPU time (user + system) of the processes ``fn`` runs, per run: unlike wall time,
    barely moved by other work on a shared machine."""

    def used() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    before = used()
    for _ in range(runs):
        fn()
    return round((used() - before) * 1000 / runs, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flotte-bench-migrate-"))
    store = work / "machine"
    tls = make_tls("10.0.0.1")  # one CA for all: RSA key generation is not what is measured
    names = [f"m{i:03d}" for i in range(args.machines)]
    for name in names:
        write_machine(store, name, "generic", generic_driver(store, name, "10.0.0.1"), tls)

    out: dict[str, object] = {"machines": args.machines}
    out["read_store_ms"] = median_ms(lambda: read_store(store), args.runs)
    out["per_machine_ms"] = round(float(out["read_store_ms"]) / args.machines, 2)  # type: ignore[arg-type]
    found = read_store(store)
    assert not found.skipped, found.skipped
    machine = found.machines[0]
    counter = iter(range(10**6))
    out["install_ms"] = median_ms(
        lambda: machine.install(work / "f" / str(next(counter))), args.runs
    )

    record, endpoint = machine.install(work / "flotte" / machine.name)
    bundle = Bundle.build(
        "machine",
        machine.name,
        Access.OWNER,
        [SharedNode(machine.name, record, endpoint)],
        machine.tls,
    )
    secret = "a bench passphrase"
    sealed = bundle.seal(passphrase=secret)
    out["seal_passphrase_ms"] = median_ms(lambda: bundle.seal(passphrase=secret), args.runs)
    out["open_passphrase_ms"] = median_ms(
        lambda: Bundle.open(sealed, "b", passphrase=secret), args.runs
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id")], check=True
    )
    to = recipient_key((work / "id.pub").read_text())
    me = identity_key((work / "id").read_bytes())
    for_key = bundle.seal(recipient=to)
    out["seal_recipient_ms"] = median_ms(lambda: bundle.seal(recipient=to), args.runs)
    out["open_recipient_ms"] = median_ms(lambda: Bundle.open(for_key, "b", identity=me), args.runs)
    out["bundle_bytes"] = len(sealed)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTTE_")}
    flotte = [sys.executable, "-m", "flotte.cli.main"]
    homes = iter(range(10**6))

    def import_all(home: Path) -> None:
        command = [*flotte, "machine", "import", "--from-docker-machine", "-s", str(store)]
        run_env = env | {"FLOTTE_HOME": str(home), "DOCKER_CONFIG": str(home / "docker")}
        res = subprocess.run(command, env=run_env, capture_output=True, text=True, check=True)
        assert res.stdout.count(": imported") + res.stdout.count(": already imported") == len(
            names
        ), res.stdout

    out["import_cli_ms"] = median_ms(lambda: import_all(work / f"h{next(homes)}"), args.runs)
    out["import_cli_cpu_ms"] = child_cpu_ms(lambda: import_all(work / f"h{next(homes)}"), args.runs)
    out["import_cli_per_machine_ms"] = round(float(out["import_cli_ms"]) / args.machines, 2)  # type: ignore[arg-type]
    home = work / "home"
    import_all(home)
    out["import_rerun_ms"] = median_ms(lambda: import_all(home), args.runs)
    out["import_rerun_cpu_ms"] = child_cpu_ms(lambda: import_all(home), args.runs)
    env |= {
        "FLOTTE_HOME": str(home),
        "_FLOTTE_COMPLETE": "bash_complete",
        "COMP_WORDS": "flotte machine rm ",
        "COMP_CWORD": "3",
    }
    answer = subprocess.run(flotte, env=env, capture_output=True, text=True, check=True).stdout
    assert answer.count("plain,") == args.machines, answer
    out["completion_ms"] = median_ms(
        lambda: subprocess.run(flotte, env=env, capture_output=True, check=True), args.runs
    )
    out["python_startup_ms"] = median_ms(
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.runs
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
