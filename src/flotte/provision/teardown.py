"""Giving a host back: flotte's configuration removed, the host's own restored.

What ``machine rm`` (and a rolled-back create) runs on a host; see :func:`unprovision`.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from flotte.provision import distros, engine_config
from flotte.provision import dockerd_service as svc
from flotte.provision.dockerd_ctl import inspect_dockerd, restart_dockerd, set_live_restore
from flotte.provision.report import (
    DATA_DIRS,
    INSTALL_RECORD,
    OWNER_FILE,
    STATE_DIR,
    Progress,
    ProvisionReport,
    load_record,
    no_progress,
    normal_marks,
    owner_marks,
    same_owner,
)
from flotte.provision.sessions import HostFacts, Session, SSHTarget, gather_facts, session


def _same_owner(owner: dict[str, str], raw: bytes) -> bool:
    try:
        there = owner_marks(raw)
    except ValueError:
        return True  # unreadable: in flotte's directory, so flotte's all the same
    return there is None or same_owner(normal_marks(owner), there)


UNDO_SCRIPT = r"""
set -e
rm -rf {tls}
rm -f {dropin}
rmdir /etc/systemd/system/docker.service.d 2>/dev/null || true
"""


async def unprovision(
    target: SSHTarget,
    *,
    purge: bool = False,
    owner: dict[str, str] | None = None,
    progress: Progress | None = None,
    leave_swarm: bool = False,
) -> ProvisionReport:
    """Remove flotte's configuration from a host; dockerd gets its own config back.

    Running containers keep running (live-restore while dockerd restarts). With
    ``purge``, the Docker packages flotte installed (and only those) are removed with
    their data; an engine that was there before flotte is left in place. Removing a
    host that has no flotte configuration is not an error. When ``owner`` is given and
    the host now carries another owner's record, the host is left alone. With
    ``leave_swarm`` (a node of a cluster flotte formed), the engine leaves its swarm first.
    """
    progress = progress or no_progress
    started = time.monotonic()
    report = ProvisionReport(name="", host=target.host)
    progress(target.host, "connecting")
    async with session(target) as sess:
        await sess.check_root()
        there = await sess.read(OWNER_FILE)
        if owner and there and not _same_owner(owner, there):
            report.warnings.append(f"the host now belongs to {there.decode()[:200]}: left alone")
            return report
        facts = await gather_facts(sess)
        report.os, report.init = distros.describe(facts.os_release), facts.init
        init = distros.INIT_SYSTEMS.get(facts.init)
        if leave_swarm and facts.swarm:
            await sess.run("docker swarm leave --force >/dev/null", timeout=60, what="leave swarm")
            report.changes.append("left the swarm of the cluster flotte formed")
            facts = await gather_facts(sess)
        record = load_record(await sess.read(INSTALL_RECORD))
        if purge and record is not None:
            progress(target.host, "removing Docker")
            await _purge(sess, record, init, report)
        else:
            await _unconfigure(
                sess, facts, init, report, progress, installed_by_flotte=record is not None
            )
            if purge:
                report.changes.append("Docker was there before flotte: left installed")
    report.seconds = round(time.monotonic() - started, 2)
    progress(target.host, "done")
    return report


async def _unconfigure(
    sess: Session,
    facts: HostFacts,
    init: distros.InitSystem | None,
    report: ProvisionReport,
    progress: Progress,
    installed_by_flotte: bool = False,
) -> None:
    tls = engine_config.TLS_DIR
    exists = await sess.run(f"[ -d {tls} ]", check=False, what="look for flotte's config")
    defaults = await sess.read(svc.SYSV_DEFAULTS)
    has_block = defaults is not None and svc.BLOCK_BEGIN.encode() in defaults
    dropin = await sess.run(f"[ -e {svc.SYSTEMD_DROPIN} ]", check=False, what="drop-in")
    if not exists.ok and not has_block and not dropin.ok:
        await _drop_ulimit_workaround(sess, report, installed_by_flotte=installed_by_flotte)
        if not report.changes:
            report.changes.append("no flotte configuration on the host: nothing to do")
        return
    progress(sess.target.host, "removing flotte's configuration")
    running, count, live, swarm, cmdline = await inspect_dockerd(sess)
    host_json_path = svc.HOST_DAEMON_JSON
    host_original = await sess.read(host_json_path)
    keep = running and count > 0 and not swarm and init is not None
    if keep and not live:
        config_file = svc.config_file_in(cmdline) or host_json_path
        keep = await set_live_restore(sess, config_file, True, keep_file=False)
    host_cfg = svc.load_host_config(host_original, host_json_path)
    lr_added = keep and not host_cfg.get("live-restore")
    if lr_added:
        # the dockerd that starts next reads the host's file: it must not stop containers
        await sess.put(host_json_path, json.dumps({**host_cfg, "live-restore": True}).encode())
    if has_block and defaults is not None:
        # the ulimit workaround stays while dockerd restarts (it cannot start without it)
        await _put_defaults(sess, svc.strip_block(defaults.decode()))
        report.changes.append("removed flotte's block from /etc/default/docker")
    await sess.run(
        UNDO_SCRIPT.format(tls=tls, dropin=svc.SYSTEMD_DROPIN), what="remove flotte's files"
    )
    report.changes.append(f"removed {tls} and the TLS listener on port 2376")
    try:
        if init is not None and running:
            await restart_dockerd(sess, init, running=True)
            report.restarted = True
            report.changes.append("restarted dockerd with the host's own configuration")
    finally:
        if lr_added:
            if host_original is None:
                await sess.run(f"rm -f {host_json_path}", what="restore daemon.json")
            else:
                await sess.put(host_json_path, host_original, 0o644)
            if running:
                await set_live_restore(sess, host_json_path, False, keep_file=False)
    if keep:
        report.containers_kept = count
        report.changes.append(f"{count} running containers kept running")
    await _drop_ulimit_workaround(sess, report, installed_by_flotte=installed_by_flotte)


async def _put_defaults(sess: Session, text: str) -> None:
    """Write /etc/default/docker, or remove it when nothing of the host's is left."""
    if text.strip():
        await sess.put(svc.SYSV_DEFAULTS, text.encode(), 0o644)
    else:
        await sess.run(f"rm -f {svc.SYSV_DEFAULTS}", what="remove /etc/default/docker")


async def _drop_ulimit_workaround(
    sess: Session, report: ProvisionReport, *, installed_by_flotte: bool
) -> None:
    """The host as it was: the ulimit workaround goes, unless flotte installed Docker here.

    An engine flotte installed stays after ``rm`` and its init script needs the
    workaround on such a host to start at all; ``rm --purge`` removes both.
    """
    raw = await sess.read(svc.SYSV_DEFAULTS)
    if raw is None or svc.ULIMIT_BEGIN.encode() not in raw:
        return
    if installed_by_flotte:
        report.changes.append(
            "kept the ulimit workaround in /etc/default/docker: the Docker flotte installed "
            "cannot start without it on this host (rm --purge removes it)"
        )
        return
    await _put_defaults(sess, svc.without_ulimit_block(raw.decode()))
    report.changes.append("removed the ulimit workaround from /etc/default/docker")


async def _purge(
    sess: Session,
    record: dict[str, Any],
    init: distros.InitSystem | None,
    report: ProvisionReport,
) -> None:
    manager = distros.PACKAGE_MANAGERS.get(str(record.get("manager")))
    if init is not None:
        await sess.run(init.stop, check=False, timeout=120, what="stop dockerd")
    # containers of a purged engine must not outlive it (their shims would)
    await sess.run(
        "pkill -KILL -f containerd-shim 2>/dev/null; pkill -KILL -x containerd 2>/dev/null; true",
        check=False,
        what="stop containers",
    )
    packages = [str(p) for p in record.get("packages", [])]
    if record.get("state") == "installing" and manager is not None:
        # the install was cut (a rolled-back create): what is there now that was not before
        now = (await sess.run(manager.list_installed, what="list packages")).stdout.split()
        packages = sorted(set(now) - set(record.get("before", [])))
    if manager is not None and packages:
        await sess.run(
            manager.remove.format(packages=" ".join(shlex.quote(p) for p in packages)),
            timeout=900,
            what="remove Docker packages",
        )
        report.changes.append(f"removed the {len(packages)} packages flotte installed")
    existed = set(record.get("existed", []))
    script = []
    for path in [*record.get("files", []), *DATA_DIRS]:
        q = shlex.quote(str(path))
        if path in existed:
            # it was there before flotte (an empty mount point, say): empty it only
            script.append(f"[ -d {q} ] && find {q} -mindepth 1 -delete 2>/dev/null || true")
        else:
            script.append(f"rm -rf {q} 2>/dev/null || find {q} -mindepth 1 -delete || true")
    if "group:docker" not in existed:
        script.append("getent group docker >/dev/null && groupdel docker || true")
    script += [
        f"rm -f {svc.SYSTEMD_DROPIN} {svc.SYSV_DEFAULTS}.dpkg-dist",
        "rmdir /etc/systemd/system/docker.service.d 2>/dev/null || true",
        f"rm -rf {STATE_DIR}",
    ]
    await sess.run("\n".join(script), what="remove Docker's data")
    raw = await sess.read(svc.SYSV_DEFAULTS)
    if raw is not None:  # the package's own conffile goes with it; flotte's blocks too
        await _put_defaults(sess, svc.without_ulimit_block(svc.strip_block(raw.decode())))
    report.changes.append("removed Docker's data and flotte's records (--purge)")
