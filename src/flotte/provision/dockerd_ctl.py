"""Driving a running dockerd over SSH: inspect it, reload it, wait for it."""

from __future__ import annotations

import asyncio
import json
import shlex

from flotte.errors import ProvisionError
from flotte.provision import distros
from flotte.provision import dockerd_service as svc
from flotte.provision.report import ProvisionReport
from flotte.provision.sessions import Session

INSPECT_DOCKERD = r"""
if docker info >/dev/null 2>&1; then
  echo "@info $(docker info --format '{{.ContainersRunning}} {{.LiveRestoreEnabled}} {{.Swarm.LocalNodeState}}')"
fi
pid=$(cat /var/run/docker.pid 2>/dev/null)
[ -n "$pid" ] && [ -r /proc/$pid/cmdline ] && printf '@cmdline %s\n' "$(CMDLINE)"
""".replace("CMDLINE", svc.CMDLINE)


async def inspect_dockerd(sess: Session) -> tuple[bool, int, bool, bool, list[str]]:
    proc = await sess.run(INSPECT_DOCKERD, check=False, what="inspect dockerd")
    running, count, live, swarm, cmdline = False, 0, False, False, []
    for line in proc.stdout.splitlines():
        if line.startswith("@info "):
            parts = line.split()
            running = True
            count = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            live = len(parts) > 2 and parts[2] == "true"
            swarm = len(parts) > 3 and parts[3] not in ("inactive", "")
        elif line.startswith("@cmdline "):
            cmdline = svc.proc_cmdline(line[len("@cmdline ") :])
    return running, count, live, swarm, cmdline


async def reload_dockerd(sess: Session) -> None:
    await sess.run("kill -HUP $(cat /var/run/docker.pid)", what="reload dockerd (SIGHUP)")


# Until dockerd has made its socket, probing costs nothing (a shell test); once the socket
# is there, one `docker version` blocks until the API serves. Polling the docker CLI in a
# tight loop instead costs real CPU when many hosts restart at once.
WAIT_DOCKERD = r"""
end=$(( $(date +%s) + {timeout} )); start=$(date +%s)
while :; do
  if [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1; then exit 0; fi
  now=$(date +%s)
  [ "$now" -ge "$end" ] && exit 1
  if [ $((now - start)) -ge 2 ]; then
    alive=
    for p in /proc/[0-9]*; do
      read -r c < "$p/comm" 2>/dev/null && [ "$c" = dockerd ] && alive=1 && break
    done
    [ -z "$alive" ] && exit 2   # it died (bad flag, bad config): no point waiting
  fi
  sleep 0.05
done
"""


# A run killed while it restarted dockerd leaves that restart going on the host; an init
# script's stop and start interleaved with the next run's leave no dockerd at all. So
# flotte's starts and restarts take a lock on the host, one after the other. The lock's
# descriptor is closed for the command: the dockerd it starts must not hold it.
SERIAL = "( command -v flock >/dev/null 2>&1 && flock 9; sh -c {cmd} 9>&- ) 9>{lock}"
LOCK = "/run/flotte-dockerd.lock"


async def restart_dockerd(
    sess: Session, init: distros.InitSystem, *, running: bool, timeout: float = 60
) -> None:
    """(Re)start dockerd and wait until it serves; one more start when none runs after
    it (a racing restart's stop came last)."""
    status = await _run_and_wait(sess, init.restart if running else init.start, timeout)
    if status == 2:
        status = await _run_and_wait(sess, init.start, timeout)
    if status != 0:
        await _failed(sess, init, status)


async def _run_and_wait(sess: Session, command: str, timeout: float) -> int:
    serial = SERIAL.format(lock=LOCK, cmd=shlex.quote(command))
    await sess.run(serial, timeout=120, what=command)
    return await _wait(sess, timeout)


async def _wait(sess: Session, timeout: float) -> int:
    """0: dockerd serves; 1: not within ``timeout``; 2: no dockerd runs."""
    proc = await sess.run(
        WAIT_DOCKERD.format(timeout=int(timeout)),
        check=False,
        timeout=timeout + 30,
        what="wait for dockerd",
    )
    return proc.exit_status


async def _failed(sess: Session, init: distros.InitSystem, status: int) -> None:
    logs = await sess.run(init.log_tail, check=False, what="dockerd log")
    lines = [ln.strip() for ln in logs.stdout.strip().splitlines() if ln.strip()]
    # the last error dockerd printed says why (an unknown flag, a bad daemon.json...)
    errors = [ln for ln in lines if "level=fatal" in ln or "failed to start" in ln.lower()]
    tail = (errors[-1:] or [" | ".join(lines[-2:])])[0][:300] or "no log"
    how = "exited" if status == 2 else "did not answer in time"
    raise ProvisionError(f"{sess.target.host}: dockerd did not start ({how}): {tail}")


async def set_live_restore(sess: Session, path: str, value: bool, *, keep_file: bool) -> bool:
    """Switch the running dockerd's live-restore by a reload through the file at ``path``.

    A reload only changes keys the file sets, so the value is written explicitly. Unless
    ``keep_file``, the file goes back as it was at once: only the daemon's memory changes.
    """
    original = await sess.read(path)
    config = svc.load_host_config(original, path)
    config["live-restore"] = value
    await sess.put(path, json.dumps(config, indent=2).encode(), 0o644)
    try:
        await reload_dockerd(sess)
        for _ in range(50):
            _, _, live, _, _ = await inspect_dockerd(sess)
            if live == value:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        if not keep_file:
            if original is None:
                await sess.run(f"rm -f {shlex.quote(path)}", what="restore config")
            else:
                await sess.put(path, original, 0o644)


async def can_raise_limits(sess: Session) -> bool:
    """False on a host that may not raise resource limits (a container without
    CAP_SYS_RESOURCE), where Debian's init script cannot start dockerd as it is."""
    proc = await sess.run(svc.CAPABILITIES, check=False, what="read capabilities")
    return svc.can_raise_limits(proc.stdout)


async def add_ulimit_workaround(sess: Session, report: ProvisionReport) -> None:
    """Before Docker's package starts its init script: the workaround, where it is needed."""
    if await can_raise_limits(sess):
        return
    current = (await sess.read(svc.SYSV_DEFAULTS) or b"").decode()
    wanted = svc.with_ulimit_block(current)
    if wanted != current:
        await sess.put(svc.SYSV_DEFAULTS, wanted.encode(), 0o644)
        report.changes.append(NO_LIMITS_NOTE)


NO_LIMITS_NOTE = (
    "this host may not raise resource limits (no CAP_SYS_RESOURCE): /etc/default/docker "
    "stands in for ulimit, so Docker's init script can start dockerd"
)
