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
Around this module: ``sessions`` (SSH sessions), ``distros`` (OS differences as data),
``install`` (cloud-init, package lock, packages), ``dockerd_service`` (how settings
join a unit, pure), ``dockerd_ctl`` (reload, live-restore, waits), ``teardown`` (rm).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from flotte.dockerapi import wait_version
from flotte.errors import FlotteError, ProvisionError, UsageError
from flotte.models import EngineOptions
from flotte.pki import CertificateAuthority, ServerCert, cert_sans
from flotte.provision import distros, engine_config
from flotte.provision import dockerd_service as svc
from flotte.provision.dockerd_ctl import (
    NO_LIMITS_NOTE,
    can_raise_limits,
    restart_dockerd,
    set_live_restore,
)
from flotte.provision.install import install_docker, wait_cloud_init
from flotte.provision.report import (
    APPLIED_FILE,
    INSTALL_RECORD,
    OWNER_FILE,
    Progress,
    ProvisionReport,
    load_record,
    no_progress,
)
from flotte.provision.sessions import (
    ConnectionDropped,
    HostFacts,
    Session,
    SSHTarget,
    gather_facts,
    session,
)
from flotte.provision.teardown import unprovision

__all__ = [
    "OWNER_FILE",
    "ProvisionReport",
    "configure_dockerd",
    "provision_docker_host",
    "provision_many",
    "unprovision",
]

log = logging.getLogger(__name__)

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
    host, quoted = sess.target.host, init.name == "systemd"
    unit_argv = svc.split_command(svc.without_config_file(cur.unit_command), host, quoted=quoted)
    host_json_path = (
        svc.config_file_in(svc.split_command(cur.unit_command, host, quoted=quoted))
        or svc.HOST_DAEMON_JSON
    )
    host_raw = (
        cur.files.get(host_json_path)
        if host_json_path in cur.files
        else await sess.read(host_json_path)
    )
    host_cfg = svc.load_host_config(host_raw, host_json_path)
    flotte_cfg = engine_config.daemon_config(engine, listen_unix=False)
    extra = [*engine_config.dockerd_flags(engine), *svc.list_flags(flotte_cfg, unit_argv)]
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
        if not await can_raise_limits(sess):
            if svc.ULIMIT_BEGIN not in service_text:
                report.changes.append(NO_LIMITS_NOTE)
            # always last, so that a second run renders the same file
            service_text = svc.with_ulimit_block(svc.without_ulimit_block(service_text))

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
        if await set_live_restore(sess, cur.config_file, True, keep_file=False):
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
    if server is None:
        report.changes.append(f"kept the TLS certificate in {tls}")
    elif cur.files.get(f"{tls}/server.pem"):
        report.changes.append(f"new TLS certificate in {tls} (for {', '.join(sans)})")
    else:
        report.changes.append(f"wrote TLS files in {tls} (certificate for {', '.join(sans)})")
    if svc.SYSTEMD_DROPIN in changed:
        report.changes.append(f"dockerd listens on {svc.TCP_HOST} (TLS): {svc.SYSTEMD_DROPIN}")
    if svc.SYSV_DEFAULTS in changed:
        report.changes.append(f"dockerd listens on {svc.TCP_HOST} (TLS): block in /etc/default")

    progress(sess.target.host, "restarting dockerd" if cur.running else "starting dockerd")
    try:
        await restart_dockerd(sess, init, running=cur.running)
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
        await set_live_restore(sess, svc.FLOTTE_DAEMON_JSON, False, keep_file=True)


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
    record = load_record(await sess.read(INSTALL_RECORD))
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
    engine_config.check_syntax(engine)  # the entry point checked the rest (validate)
    if install not in distros.INSTALL_CHOICES:
        raise UsageError(
            f"--engine-install {install!r} is not one of {', '.join(distros.INSTALL_CHOICES)}"
        )
    progress = progress or no_progress
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
    report.docker_version = await wait_version(docker_host or target.host, ca, tls_timeout)
    report.seconds = round(time.monotonic() - started, 2)
    progress(target.host, "done")
    for change in report.changes:
        log.info("%s: %s", target.host, change)
    return report


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
