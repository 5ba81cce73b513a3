"""Turn a machine reachable over SSH into a TLS-protected Docker host, and back.

This is the one provisioner of flotte: the SSH driver calls it for existing servers,
the OpenStack and EC2 drivers call it once their VM answers on SSH. Entry points:

* :func:`provision_docker_host` — detect the OS, wait for cloud-init and the package
  lock, install Docker when missing, configure TLS on port 2376 (certificates signed by
  the installation's CA), restart dockerd without stopping running containers, and
  wait until the TLS API answers from here. Re-running it converges: files that are
  already right are not rewritten, and dockerd is not restarted for nothing.
* :func:`unprovision` — what ``machine rm`` does: remove flotte's configuration and
  give the host its own dockerd configuration back; with ``purge``, also remove the
  Docker packages flotte installed.
* :func:`provision_many` — many hosts at once; one failing host does not hide the
  results of the others.

Every change made to a host is listed in the returned :class:`ProvisionReport`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import shlex
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flotte.errors import FlotteError, ProvisionError, UsageError
from flotte.models import EngineOptions
from flotte.pki import CertificateAuthority, ServerCert, cert_sans
from flotte.provision import distros, engine_config
from flotte.provision import dockerd_service as svc
from flotte.provision.ssh import (
    ConnectionDropped,
    HostFacts,
    Session,
    SSHTarget,
    gather_facts,
    session,
)

log = logging.getLogger(__name__)

STATE_DIR = "/var/lib/flotte"  # kept after rm: what flotte installed, for --purge
INSTALL_RECORD = f"{STATE_DIR}/install.json"
OWNER_FILE = f"{engine_config.TLS_DIR}/owner.json"
APPLIED_FILE = f"{engine_config.TLS_DIR}/applied"  # digest of the setup dockerd runs with
DATA_DIRS = ("/etc/docker", "/var/lib/docker", "/var/lib/containerd")

Progress = Callable[[str, str], None]  # (host, step)


def _no_progress(host: str, step: str) -> None:
    pass


@dataclass
class ProvisionReport:
    """What provisioning found on a host and what it changed there."""

    name: str
    host: str
    os: str = ""
    distro: str = ""
    arch: str = ""
    init: str = ""
    docker_version: str = ""
    installed: bool = False  # flotte installed the engine during this run
    adopted: bool = False  # the engine was there before flotte
    restarted: bool = False
    containers_kept: int = 0  # containers that kept running across the restart
    addresses: list[str] = field(default_factory=list)
    sans: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waited: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# ---------------------------------------------------------------------------------------
# waiting for what else is running on a fresh machine


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


async def _run_packaged(
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
    await _run_packaged(sess, mgr.refresh, plan, report, progress, deadline, "package refresh")
    if plan.setup:
        await _run_packaged(
            sess, plan.setup, plan, report, progress, deadline, "Docker repository setup"
        )
        await _run_packaged(sess, mgr.refresh, plan, report, progress, deadline, "refresh")
    if plan.packages:
        install = mgr.install.format(packages=" ".join(plan.packages))
        await _run_packaged(sess, install, plan, report, progress, deadline, "Docker install")
    after = set((await sess.run(mgr.list_installed, what="list packages")).stdout.split())
    added = sorted(after - set(record.get("before", [])))
    record.update(state="done", packages=added)
    await sess.put_many([(INSTALL_RECORD, json.dumps(record, indent=2).encode(), 0o644)])
    report.installed = True
    report.changes.append(f"installed Docker: {plan.description} ({len(added)} packages)")


# ---------------------------------------------------------------------------------------
# configuring dockerd


@dataclass
class _Current:
    """What the host has now, read in one pass."""

    files: dict[str, bytes | None]
    unit_command: str  # systemd ExecStart, or sysv DOCKER_OPTS (without flotte's block)
    running: bool
    containers_running: int
    live_restore: bool
    swarm: bool
    config_file: str  # the file the running dockerd reloads on SIGHUP


INSPECT_DOCKERD = r"""
if docker info >/dev/null 2>&1; then
  echo "@info $(docker info --format '{{.ContainersRunning}} {{.LiveRestoreEnabled}} {{.Swarm.LocalNodeState}}')"
fi
pid=$(cat /var/run/docker.pid 2>/dev/null)
[ -n "$pid" ] && [ -r /proc/$pid/cmdline ] && echo "@cmdline $(tr '\0' ' ' < /proc/$pid/cmdline)"
"""


async def _inspect_dockerd(sess: Session) -> tuple[bool, int, bool, bool, list[str]]:
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
            cmdline = svc.split_args(line[len("@cmdline ") :])
    return running, count, live, swarm, cmdline


async def _read_current(
    sess: Session, facts: HostFacts, init: str, paths: Iterable[str]
) -> _Current:
    files = await sess.read_many(list(paths))
    if init == "systemd":
        cat = await sess.run(
            "systemctl cat docker.service 2>/dev/null", check=False, what="systemctl cat docker"
        )
        unit_command = svc.parse_systemctl_cat(cat.stdout) or ""
        if not unit_command:
            raise ProvisionError(f"{sess.target.host}: docker.service has no ExecStart")
    else:
        defaults = (files.get(svc.SYSV_DEFAULTS) or b"").decode()
        proc = await sess.run(
            'DOCKER_OPTS=; eval "$(cat)"; printf %s "$DOCKER_OPTS"',
            input=svc.strip_block(defaults).encode(),
            check=False,
            what="read DOCKER_OPTS",
        )
        unit_command = proc.stdout
    return _Current(
        files=files,
        unit_command=unit_command,
        running=facts.docker_running,
        containers_running=facts.containers_running,
        live_restore=facts.live_restore,
        swarm=facts.swarm,
        config_file=svc.config_file_in(facts.dockerd_cmdline) or svc.HOST_DAEMON_JSON,
    )


def _reusable_cert(current: dict[str, bytes | None], ca_pem: bytes, sans: list[str]) -> bool:
    cert = current.get(f"{engine_config.TLS_DIR}/server.pem")
    key = current.get(f"{engine_config.TLS_DIR}/server-key.pem")
    if not cert or not key or current.get(f"{engine_config.TLS_DIR}/ca.pem") != ca_pem:
        return False
    try:
        from cryptography import x509

        parsed = x509.load_pem_x509_certificate(cert)
        remaining = parsed.not_valid_after_utc.timestamp() - time.time()
        return remaining > 30 * 86400 and set(sans) <= cert_sans(cert)
    except ValueError:
        return False


async def _hup(sess: Session) -> None:
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


async def _wait_local_docker(sess: Session, init: distros.InitSystem, timeout: float) -> None:
    proc = await sess.run(
        WAIT_DOCKERD.format(timeout=int(timeout)),
        check=False,
        timeout=timeout + 30,
        what="wait for dockerd",
    )
    if not proc.ok:
        logs = await sess.run(init.log_tail, check=False, what="dockerd log")
        lines = [ln.strip() for ln in logs.stdout.strip().splitlines() if ln.strip()]
        # the last error dockerd printed says why (an unknown flag, a bad daemon.json...)
        errors = [ln for ln in lines if "level=fatal" in ln or "failed to start" in ln.lower()]
        tail = (errors[-1:] or [" | ".join(lines[-2:])])[0][:300] or "no log"
        how = "exited" if proc.exit_status == 2 else "did not answer in time"
        raise ProvisionError(f"{sess.target.host}: dockerd did not start ({how}): {tail}")


async def _live_restore_via(sess: Session, path: str, value: bool, *, keep_file: bool) -> bool:
    """Switch the running dockerd's live-restore by a reload through the file at ``path``.

    A reload only changes keys the file sets, so the value is written explicitly. Unless
    ``keep_file``, the file goes back as it was at once: only the daemon's memory changes.
    """
    original = await sess.read(path)
    config = svc.load_host_config(original, path)
    config["live-restore"] = value
    await sess.put(path, json.dumps(config, indent=2).encode(), 0o644)
    try:
        await _hup(sess)
        for _ in range(50):
            _, _, live, _, _ = await _inspect_dockerd(sess)
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


def _server_cert(
    ca: CertificateAuthority, name: str, sans: list[str], current: dict[str, bytes | None]
) -> ServerCert | None:
    """A new server certificate, or None when the one on the host is still right."""
    if _reusable_cert(current, ca.ca_path.read_bytes(), sans):
        return None
    return ca.server_cert(name, sans)


async def configure_dockerd(
    sess: Session,
    facts: HostFacts,
    engine: EngineOptions,
    ca: CertificateAuthority,
    name: str,
    sans: list[str],
    report: ProvisionReport,
    progress: Progress,
    owner: dict[str, str] | None = None,
    renew_cert: bool = False,
) -> None:
    """Write flotte's configuration and (re)start dockerd only when something changed."""
    init = distros.INIT_SYSTEMS.get(facts.init)
    if init is None:
        raise ProvisionError(
            f"{sess.target.host}: cannot manage the docker service (no systemd, no init.d)"
        )
    service_file = svc.SYSTEMD_DROPIN if init.name == "systemd" else svc.SYSV_DEFAULTS
    tls = engine_config.TLS_DIR
    names = [f"{tls}/{n}" for n in ("ca.pem", "server.pem", "server-key.pem", "daemon.json")]
    names += [f"{tls}/dockerd.env", service_file, svc.HOST_DAEMON_JSON, OWNER_FILE, APPLIED_FILE]
    cur = await _read_current(sess, facts, init.name, names)

    server = ca.server_cert(name, sans) if renew_cert else _server_cert(ca, name, sans, cur.files)
    rendered = {
        f.path: f
        for f in engine_config.files(
            engine,
            server
            or ServerCert(
                cert_pem=cur.files[f"{tls}/server.pem"] or b"",
                key_pem=cur.files[f"{tls}/server-key.pem"] or b"",
                ca_pem=ca.ca_path.read_bytes(),
            ),
        )
    }
    unit_argv = svc.split_args(svc.without_config_file(cur.unit_command))
    host_json_path = svc.config_file_in(svc.split_args(cur.unit_command)) or svc.HOST_DAEMON_JSON
    host_raw = (
        cur.files.get(host_json_path)
        if host_json_path in cur.files
        else await sess.read(host_json_path)
    )
    host_cfg = svc.load_host_config(host_raw, host_json_path)
    flotte_cfg = engine_config.daemon_config(engine, listen_unix=False)
    extra = engine_config.dockerd_flags(engine)
    listen = svc.listen_flags(unit_argv, list(host_cfg.get("hosts", []) or []))
    ours = [*listen, "--config-file", svc.FLOTTE_DAEMON_JSON, *extra]
    merged, _ = svc.merge_config(host_cfg, flotte_cfg, [*unit_argv, *ours])
    if "live-restore" not in svc.flag_keys(unit_argv):
        # explicit, so that a reload can switch it back after a restart (below)
        merged.setdefault("live-restore", False)
    if init.name == "systemd":
        service_text = svc.systemd_dropin(cur.unit_command, ours, name)
    else:
        old = (cur.files.get(svc.SYSV_DEFAULTS) or b"").decode()
        service_text = svc.with_block(old, svc.sysv_block(ours, name))

    desired: dict[str, tuple[bytes, int]] = {
        path: (f.content, f.mode)
        for path, f in rendered.items()
        if path.endswith(("ca.pem", "server.pem", "server-key.pem", "dockerd.env"))
    }
    desired[svc.FLOTTE_DAEMON_JSON] = (json.dumps(merged, indent=2).encode(), 0o644)
    desired[service_file] = (service_text.encode(), 0o644)
    if owner:
        desired[OWNER_FILE] = (json.dumps(owner, sort_keys=True).encode(), 0o644)
    changed = [p for p, (data, _) in desired.items() if cur.files.get(p) != data]
    # Files can be right while dockerd still runs an older setup (a run cut between
    # writing and restarting): the digest of what the running dockerd was started with
    # is written only after a successful restart.
    digest = hashlib.sha256(
        b"".join(p.encode() + b"\0" + d + b"\0" for p, (d, _) in sorted(desired.items()))
    ).hexdigest()
    applied = (
        cur.running
        and cur.config_file == svc.FLOTTE_DAEMON_JSON
        and (cur.files.get(APPLIED_FILE) or b"").decode().strip() == digest
    )

    if host_cfg:
        kept = sorted(set(host_cfg) - {"hosts"})
        if kept and svc.FLOTTE_DAEMON_JSON in changed:
            report.changes.append(f"kept the host's daemon.json settings: {', '.join(kept)}")
    if not changed and applied:
        report.changes.append("already configured: nothing changed")
        return

    progress(sess.target.host, "configuring dockerd")
    # live-restore keeps containers running while dockerd restarts; swarm mode refuses it.
    keep = cur.running and cur.containers_running > 0 and not cur.swarm
    lr_added = False
    if keep and not cur.live_restore:
        if await _live_restore_via(sess, cur.config_file, True, keep_file=False):
            lr_added = not merged.get("live-restore")
        else:
            keep = False
            report.warnings.append("could not switch on live-restore: containers restart")
    if lr_added:
        desired[svc.FLOTTE_DAEMON_JSON] = (
            json.dumps({**merged, "live-restore": True}, indent=2).encode(),
            0o644,
        )
    backup = {p: cur.files.get(p) for p in desired}
    await sess.put_many(
        [
            (path, data, mode)
            for path, (data, mode) in desired.items()
            if cur.files.get(path) != data or path == svc.FLOTTE_DAEMON_JSON
        ]
    )
    report.changes.append(
        f"{'replaced' if server is not None and cur.files.get(f'{tls}/server.pem') else 'wrote'} "
        f"TLS files in {tls}"
        if server is not None
        else f"kept the TLS certificate in {tls}"
    )
    if svc.SYSTEMD_DROPIN in changed:
        report.changes.append(f"dockerd listens on {svc.TCP_HOST} (TLS): {svc.SYSTEMD_DROPIN}")
    if svc.SYSV_DEFAULTS in changed:
        report.changes.append(f"dockerd listens on {svc.TCP_HOST} (TLS): block in /etc/default")

    progress(sess.target.host, "restarting dockerd" if cur.running else "starting dockerd")
    try:
        await sess.run(init.restart if cur.running else init.start, timeout=120, what="restart")
        await _wait_local_docker(sess, init, 60)
    except ProvisionError:
        await _restore(sess, backup, init)
        raise
    await sess.put_many([(APPLIED_FILE, f"{digest}\n".encode(), 0o644)])
    await sess.run(init.enable, check=False, what="enable docker at boot")
    report.restarted = cur.running
    report.changes.append("restarted dockerd" if cur.running else "started dockerd")
    if keep:
        report.containers_kept = cur.containers_running
        report.changes.append(f"{cur.containers_running} running containers kept running")
    elif cur.containers_running:
        report.warnings.append(f"{cur.containers_running} running containers were restarted")
    if lr_added:
        # Back to the host's own setting (swarm mode refuses live-restore): a reload.
        await _live_restore_via(sess, svc.FLOTTE_DAEMON_JSON, False, keep_file=True)


async def _restore(
    sess: Session, backup: dict[str, bytes | None], init: distros.InitSystem
) -> None:
    """Put back the files a failed restart used, so the host keeps a working dockerd."""
    for path, data in backup.items():
        if data is None:
            await sess.run(f"rm -f {shlex.quote(path)}", check=False, what="restore")
        else:
            await sess.put(path, data, 0o644 if not path.endswith("key.pem") else 0o600)
    await sess.run(init.restart, check=False, timeout=120, what="restart previous dockerd")


# ---------------------------------------------------------------------------------------
# the TLS API, checked from this side


def client_ssl_context(ca: CertificateAuthority) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.ca_path))
    ctx.load_cert_chain(str(ca.client.cert), str(ca.client.key))
    return ctx


async def tls_get(
    host: str, port: int, ctx: ssl.SSLContext, path: str = "/_ping", timeout: float = 3.0
) -> bytes | None:
    """The body of ``GET path`` over TLS verified against flotte's CA, or None."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), timeout
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    try:
        request = f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError, ssl.SSLError):
        return None
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return body if head.split(b" ", 2)[1:2] == [b"200"] else None


async def tls_ping(host: str, port: int, ctx: ssl.SSLContext, timeout: float = 3.0) -> bool:
    """True when ``GET /_ping`` answers 200 over TLS verified against flotte's CA."""
    return await tls_get(host, port, ctx, "/_ping", timeout) is not None


async def wait_tls(
    host: str, ca: CertificateAuthority, timeout: float, port: int = engine_config.DOCKER_TLS_PORT
) -> str:
    """Wait until the engine answers over TLS from here; returns its version."""
    ctx = client_ssl_context(ca)
    deadline = time.monotonic() + timeout
    while (body := await tls_get(host, port, ctx, "/version")) is None:
        if time.monotonic() > deadline:
            raise ProvisionError(
                f"the Docker API at {host}:{port} does not answer over TLS",
                hint=f"check that a firewall lets TCP {port} in from this machine",
            )
        await asyncio.sleep(0.1)
    try:
        return str(json.loads(body).get("Version", ""))
    except ValueError:
        return ""


# ---------------------------------------------------------------------------------------
# entry points


async def _provision_once(
    sess: Session,
    engine: EngineOptions,
    ca: CertificateAuthority,
    name: str,
    sans: list[str],
    install: str,
    report: ProvisionReport,
    progress: Progress,
    lock_timeout: float,
    owner: dict[str, str] | None,
    install_url: str | None,
    renew_cert: bool,
) -> None:
    await sess.check_root()
    progress(sess.target.host, "inspecting")
    facts = await gather_facts(sess)
    distro = distros.detect(facts.os_release)
    report.os = distros.describe(facts.os_release)
    report.distro = distro.key if distro else ""
    report.arch, report.init = facts.machine, facts.init
    report.addresses = facts.addresses
    if facts.cloud_init:
        progress(sess.target.host, "waiting for cloud-init")
        await wait_cloud_init(sess, report, lock_timeout)
    record = _load_record(await sess.read(INSTALL_RECORD))
    unfinished = record is not None and record.get("state") == "installing"
    if not facts.docker_installed or unfinished:
        if install == "skip" and not unfinished:
            raise ProvisionError(
                f"Docker is not installed on {sess.target.host} and --engine-install is skip",
                hint="install it there, or use --engine-install auto",
            )
        await install_docker(
            sess,
            facts,
            install if install != "skip" else "auto",
            report,
            progress,
            lock_timeout,
            install_url,
            resume=record if unfinished else None,
        )
        facts = await gather_facts(sess)
    elif not report.installed:
        report.adopted = record is None
    all_sans = list(dict.fromkeys([*sans, sess.target.host, *facts.addresses, facts.hostname]))
    all_sans = [s for s in all_sans if s]
    report.sans = all_sans
    await configure_dockerd(
        sess, facts, engine, ca, name, all_sans, report, progress, owner, renew_cert
    )


async def provision_docker_host(
    target: SSHTarget,
    engine: EngineOptions,
    ca: CertificateAuthority,
    name: str,
    sans: list[str],
    install: str = "auto",
    *,
    docker_host: str | None = None,
    owner: dict[str, str] | None = None,
    progress: Progress | None = None,
    lock_timeout: float = 600.0,
    tls_timeout: float = 60.0,
    reconnects: int = 2,
    install_url: str | None = None,
    renew_cert: bool = False,
) -> ProvisionReport:
    """Make ``target`` a Docker host whose API answers on ``docker_host``:2376 over TLS.

    ``sans`` are extra names/addresses for the server certificate (the SSH address and
    the host's own global addresses are always in it). ``install`` is one of
    ``auto|distro|upstream|skip``. ``docker_host`` is the address clients will use
    (default: ``target.host``). ``owner`` is written to ``/etc/docker/flotte/owner.json``
    so another installation does not take the host by mistake. If the SSH connection
    drops mid-way, the work is resumed on a new connection up to ``reconnects`` times;
    every step is idempotent, so that is safe. ``install_url`` is a script that installs
    Docker (docker-machine's ``--engine-install-url``), used instead of packages.
    The server certificate on the host is kept while it is signed by ``ca``, covers
    every address and has 30 days left, unless ``renew_cert`` (``regenerate-certs``).
    """
    engine_config.validate(engine)
    if install not in distros.INSTALL_CHOICES:
        raise UsageError(
            f"--engine-install {install!r} is not one of {', '.join(distros.INSTALL_CHOICES)}"
        )
    progress = progress or _no_progress
    started = time.monotonic()
    ca.ensure()
    report = ProvisionReport(name=name, host=target.host)
    dropped = 0
    while True:
        progress(target.host, "connecting")
        try:
            async with session(target) as sess:
                await _provision_once(
                    sess,
                    engine,
                    ca,
                    name,
                    sans,
                    install,
                    report,
                    progress,
                    lock_timeout,
                    owner,
                    install_url,
                    renew_cert,
                )
            break
        except ConnectionDropped as err:
            dropped += 1
            if dropped > reconnects:
                raise
            report.warnings.append(f"{err.message}; reconnected and resumed")
            await asyncio.sleep(min(2.0, target.backoff * dropped))
    progress(target.host, "waiting for the TLS API")
    report.docker_version = await wait_tls(docker_host or target.host, ca, tls_timeout)
    report.seconds = round(time.monotonic() - started, 2)
    progress(target.host, "done")
    for change in report.changes:
        log.info("%s: %s", target.host, change)
    return report


async def read_owner(target: SSHTarget) -> dict[str, Any] | None:
    """The owner record flotte left on a host, if any (to refuse taking another's host)."""
    async with session(target) as sess:
        await sess.check_root()
        raw = await sess.read(OWNER_FILE)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _load_record(raw: bytes | None) -> dict[str, Any] | None:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _same_owner(owner: dict[str, str], raw: bytes) -> bool:
    try:
        there = json.loads(raw)
    except ValueError:
        return True  # unreadable: it is flotte's file all the same
    keys = ("installation", "machine", "cluster", "node")
    return all(there.get(k) == owner.get(k) for k in keys if owner.get(k))


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
    progress = progress or _no_progress
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
        record = _load_record(await sess.read(INSTALL_RECORD))
        if purge and record is not None:
            progress(target.host, "removing Docker")
            await _purge(sess, record, init, report)
        else:
            await _unconfigure(sess, facts, init, report, progress)
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
) -> None:
    tls = engine_config.TLS_DIR
    exists = await sess.run(f"[ -d {tls} ]", check=False, what="look for flotte's config")
    defaults = await sess.read(svc.SYSV_DEFAULTS)
    has_block = defaults is not None and svc.BLOCK_BEGIN.encode() in defaults
    dropin = await sess.run(f"[ -e {svc.SYSTEMD_DROPIN} ]", check=False, what="drop-in")
    if not exists.ok and not has_block and not dropin.ok:
        report.changes.append("no flotte configuration on the host: nothing to do")
        return
    progress(sess.target.host, "removing flotte's configuration")
    running, count, live, swarm, cmdline = await _inspect_dockerd(sess)
    host_json_path = svc.HOST_DAEMON_JSON
    host_original = await sess.read(host_json_path)
    keep = running and count > 0 and not swarm and init is not None
    if keep and not live:
        config_file = svc.config_file_in(cmdline) or host_json_path
        keep = await _live_restore_via(sess, config_file, True, keep_file=False)
    host_cfg = svc.load_host_config(host_original, host_json_path)
    lr_added = keep and not host_cfg.get("live-restore")
    if lr_added:
        # the dockerd that starts next reads the host's file: it must not stop containers
        await sess.put(host_json_path, json.dumps({**host_cfg, "live-restore": True}).encode())
    if has_block and defaults is not None:
        stripped = svc.strip_block(defaults.decode())
        if stripped.strip():
            await sess.put(svc.SYSV_DEFAULTS, stripped.encode(), 0o644)
        else:
            await sess.run(f"rm -f {svc.SYSV_DEFAULTS}", what="remove /etc/default/docker")
        report.changes.append("removed flotte's block from /etc/default/docker")
    await sess.run(
        UNDO_SCRIPT.format(tls=tls, dropin=svc.SYSTEMD_DROPIN), what="remove flotte's files"
    )
    report.changes.append(f"removed {tls} and the TLS listener on port 2376")
    try:
        if init is not None and running:
            await sess.run(init.restart, timeout=120, what="restart dockerd")
            await _wait_local_docker(sess, init, 60)
            report.restarted = True
            report.changes.append("restarted dockerd with the host's own configuration")
    finally:
        if lr_added:
            if host_original is None:
                await sess.run(f"rm -f {host_json_path}", what="restore daemon.json")
            else:
                await sess.put(host_json_path, host_original, 0o644)
            if running:
                await _live_restore_via(sess, host_json_path, False, keep_file=False)
    if keep:
        report.containers_kept = count
        report.changes.append(f"{count} running containers kept running")


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
        f"rm -f {svc.SYSTEMD_DROPIN}",
        "rmdir /etc/systemd/system/docker.service.d 2>/dev/null || true",
        f"rm -rf {STATE_DIR}",
    ]
    await sess.run("\n".join(script), what="remove Docker's data")
    report.changes.append("removed Docker's data and flotte's records (--purge)")


async def provision_many(
    jobs: dict[str, Callable[[], Awaitable[ProvisionReport]]],
    limit: int = 16,
) -> dict[str, ProvisionReport | FlotteError]:
    """Run provisioning coroutines at once (``limit`` at a time); each host's result.

    A host that fails gets its error in the result and the others go on: nothing one
    host does hides what happened on another.
    """
    gate = asyncio.Semaphore(limit)

    async def one(key: str) -> ProvisionReport | FlotteError:
        async with gate:
            try:
                return await jobs[key]()
            except FlotteError as err:
                return err

    keys = list(jobs)
    results = await asyncio.gather(*(one(k) for k in keys))
    return dict(zip(keys, results, strict=True))
