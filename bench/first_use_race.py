"""First use of a new FLOTTE_HOME by many commands at once; prints one JSON object.

Each round makes a new, empty FLOTTE_HOME and starts ``--parallel`` real
``flotte machine ls`` processes on it at the same moment. A round fails when any
process exits non-zero or prints a traceback, or when the home it leaves behind is not
consistent: the CA key, the CA certificate and the client certificate must belong
together, there must be exactly one installation id, the database must pass
``PRAGMA integrity_check`` and be 0600 in a 0700 directory, no temporary file is left.

- ``rounds``, ``parallel``: what was run;
- ``failed_rounds``, ``failed_processes``, ``inconsistent_homes``: the figures to beat (0);
- ``errors``: the distinct first lines of what failed (at most 10);
- ``round_seconds_median``: wall time of one round (12 processes on 2 cores);

Usage: ``.venv/bin/python bench/first_use_race.py [--rounds 30] [--parallel 12]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOTTE = str(Path(sys.executable).with_name("flotte"))
# the same independent checks as the test (sqlite3 and cryptography, not flotte's own)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "core"))
from test_first_use import home_problems  # noqa: E402


def one_round(parallel: int, tmp: Path) -> tuple[int, list[str], list[str], float]:
    home = Path(tempfile.mkdtemp(dir=tmp)) / "home"
    env = {**os.environ, "FLOTTE_HOME": str(home)}
    env.pop("FLOTTE_DATABASE_URL", None)
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [FLOTTE, "machine", "ls"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(parallel)
    ]
    failed, errors = 0, []
    for p in procs:
        _out, err = p.communicate()
        if p.returncode != 0 or "Traceback" in err:
            failed += 1
            lines = [ln for ln in err.strip().splitlines() if ln.strip()]
            last = lines[-1][:200] if lines else f"exit {p.returncode}"
            errors.append(last.replace(str(home), "$FLOTTE_HOME"))
    seconds = time.monotonic() - started
    return failed, errors, home_problems(home), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=12)
    args = parser.parse_args()
    failed_rounds = failed_procs = inconsistent = 0
    errors: dict[str, int] = {}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            failed, errs, problems, seconds = one_round(args.parallel, Path(tmp))
            times.append(seconds)
            failed_procs += failed
            inconsistent += bool(problems)
            failed_rounds += bool(failed or problems)
            for e in [*errs, *problems]:
                errors[e] = errors.get(e, 0) + 1
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "parallel": args.parallel,
                "failed_rounds": failed_rounds,
                "failed_processes": failed_procs,
                "inconsistent_homes": inconsistent,
                "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10]),
                "round_seconds_median": round(statistics.median(times), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
