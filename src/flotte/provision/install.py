"""Getting Docker onto a host: cloud-init first, the package lock, then the packages."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shlex
import time
from typing import Any

from flotte.errors import ProvisionError
from flotte.provision import distros
from flotte.provision.dockerd_ctl import add_ulimit_workaround
from flotte.provision.report import DATA_DIRS, INSTALL_RECORD, Progress, ProvisionReport
from flotte.provision.sessions import HostFacts, Session


async def wait_cloud_init(sess: Session, report: ProvisionReport, timeout: float) -> None:
    """cloud-init installs packages and rewrites configs at first boot: let it finish."""
    started = time.monotonic()
    proc = await sess.run(
        "cloud-init status --wait >/dev/null 2>&1; cloud-init status 2>/dev/null | head -1",
        check=False,
        timeout=timeout,
        what="wait for cloud-init",
    )
    report.waited["cloud-init"] = round(time.monotonic() - started, 2)
    status = proc.stdout.strip()
    if status and "done" not in status and "disabled" not in status:
        report.warnings.append(f"cloud-init finished with '{status}'; see cloud-init.log")


def _lock_busy(text: str, plan: distros.InstallPlan) -> bool:
    return any(marker in text for marker in plan.manager.lock_busy)


async def run_packaged(
    sess: Session,
    script: str,
    plan: distros.InstallPlan,
    report: ProvisionReport,
    progress: Progress,
    deadline: float,
    what: str,
) -> None:
    """Run a package command, waiting while another process holds the package lock."""
    waited_since: float | None = None
    while True:
        proc = await sess.run(script, check=False, timeout=900, what=what)
        output = proc.stdout + proc.stderr
        if proc.ok:
            if waited_since is not None:
                report.waited["package lock"] = round(
                    report.waited.get("package lock", 0) + time.monotonic() - waited_since, 2
                )
            return
        if "dpkg was interrupted" in output:
            # a previous run (or someone) was killed mid-install: finish its work first
            await sess.run(plan.manager.repair, timeout=900, what="dpkg --configure -a")
            report.changes.append("finished an interrupted dpkg run (dpkg --configure -a)")
            continue
        if _lock_busy(output, plan) and time.monotonic() < deadline:
            if waited_since is None:
                waited_since = time.monotonic()
                progress(sess.target.host, "waiting for the package lock")
            await asyncio.sleep(1.0)
            continue
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        if _lock_busy(output, plan):
            raise ProvisionError(
                f"{sess.target.host}: the package lock stayed busy for too long during {what}",
                hint="another package installation is running there; re-run when it is done",
            )
        raise ProvisionError(f"{sess.target.host}: {what} failed: {last[0][:300]}")


async def install_docker(
    sess: Session,
    facts: HostFacts,
    choice: str,
    report: ProvisionReport,
    progress: Progress,
    lock_timeout: float,
    url: str | None = None,
    resume: dict[str, Any] | None = None,
) -> None:
    """Install Docker; ``resume`` is the record of an install a cut connection stopped.

    The record is written *before* anything is installed (with the package list as it
    was), so a run that is cut mid-install is finished by the next one and ``--purge``
    still knows exactly which packages flotte added.
    """
    distro = distros.detect(facts.os_release)
    if distro is None:
        raise ProvisionError(
            f"{sess.target.host} runs {distros.describe(facts.os_release)} "
            f"(ID={facts.os_release.get('ID', '?')}), on which flotte cannot install Docker",
            hint=f"supported: {distros.supported_names()}; or install Docker yourself "
            "and use --engine-install skip",
        )
    plan = distros.install_plan(distro, choice, facts.machine, facts.os_release)
    if url:
        # docker-machine's --engine-install-url (get.docker.com and the like)
        plan = dataclasses.replace(
            plan,
            method="script",
            setup=f"(curl -fsSL {shlex.quote(url)} || wget -qO- {shlex.quote(url)}) | sh",
            packages=(),
            description=f"the script at {url}",
        )
    progress(sess.target.host, f"installing Docker ({plan.description})")
    mgr = plan.manager
    if resume is not None:
        record = dict(resume)
        report.changes.append("finished an install an earlier run had started")
    else:
        before = (await sess.run(mgr.list_installed, what="list packages")).stdout.split()
        existed = await sess.run(
            "for p in " + " ".join(DATA_DIRS) + '; do [ -e "$p" ] && echo "$p"; done; '
            "getent group docker >/dev/null && echo group:docker",
            check=False,
            what="look for Docker leftovers",
        )
        record = {
            "state": "installing",
            "method": plan.method,
            "manager": mgr.name,
            "before": sorted(before),
            "files": list(plan.files),
            "existed": existed.stdout.split(),
            "at": time.time(),
        }
        await sess.put_many([(INSTALL_RECORD, json.dumps(record, indent=2).encode(), 0o644)])
    deadline = time.monotonic() + lock_timeout
    await run_packaged(sess, mgr.refresh, plan, report, progress, deadline, "package refresh")
    if plan.setup:
        await run_packaged(
            sess, plan.setup, plan, report, progress, deadline, "Docker repository setup"
        )
        await run_packaged(sess, mgr.refresh, plan, report, progress, deadline, "refresh")
    if plan.packages:
        if facts.init == "sysv":
            await add_ulimit_workaround(sess, report)  # the package starts dockerd at once
        install = mgr.install.format(packages=" ".join(plan.packages))
        await run_packaged(sess, install, plan, report, progress, deadline, "Docker install")
    after = set((await sess.run(mgr.list_installed, what="list packages")).stdout.split())
    added = sorted(after - set(record.get("before", [])))
    record.update(state="done", packages=added)
    await sess.put_many([(INSTALL_RECORD, json.dumps(record, indent=2).encode(), 0o644)])
    report.installed = True
    report.changes.append(f"installed Docker: {plan.description} ({len(added)} packages)")
