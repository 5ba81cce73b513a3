"""The SSH provisioner against real sshd hosts with real dockerd: what the drivers call."""

from __future__ import annotations

import time

import pytest
from ssh_helpers import (
    refused_without_cert,
    run_tiny,
    snapshot,
    started,
    tls_client,
    without_containers,
)

from flotte.errors import AuthError
from flotte.models import EngineOptions
from flotte.pki import cert_sans
from flotte.provision.docker_host import (
    ProvisionReport,
    provision_docker_host,
    provision_many,
    unprovision,
)

pytestmark = pytest.mark.docker

ENGINE = EngineOptions(labels=("lab=iphc",), insecure_registries=("reg.local:5000",))


async def test_adopt_running_engine_with_sudo_user(ssh_host, target, ca) -> None:
    """A server that already runs Docker and containers: adopted, nothing interrupted."""
    host = ssh_host("docker")
    host.sh(
        'echo \'{"log-level": "warn"}\' > /etc/docker/daemon.json && flotte-test-dockerd restart'
    )
    _wait_docker(host)
    kept = run_tiny(host, "keepme")
    before = snapshot(host)
    t = target(host, user="deploy")

    report = await provision_docker_host(t, ENGINE, ca, "m1", ["m1.example.org"])

    assert report.adopted and not report.installed
    assert report.containers_kept == 1
    assert started(host, "keepme") == kept  # same start time, same pid: never restarted
    assert any("kept the host's daemon.json settings: log-level" in c for c in report.changes)
    client = tls_client(host.ip, ca)
    info = client.info()
    assert "lab=iphc" in info["Labels"]
    assert (
        info["LoggingDriver"]
        and host.sh("docker info -f '{{.LiveRestoreEnabled}}'").strip() == "false"
    )
    assert "keepme" in [c.name for c in client.containers.list(ignore_removed=True)]
    assert refused_without_cert(host.ip, ca)
    pem = host.sh("cat /etc/docker/flotte/server.pem").encode()
    assert {host.ip, "m1.example.org", "m1"} <= cert_sans(pem)
    assert host.sh("stat -c %a /etc/docker/flotte/server-key.pem").strip() == "600"
    assert host.sh("cat /etc/docker/daemon.json").strip() == '{"log-level": "warn"}'

    # Re-running converges without touching the engine.
    pid = host.sh("cat /var/run/docker.pid").strip()
    again = await provision_docker_host(t, ENGINE, ca, "m1", ["m1.example.org"])
    assert again.changes == ["already configured: nothing changed"]
    assert host.sh("cat /var/run/docker.pid").strip() == pid

    undone = await unprovision(t)
    assert undone.containers_kept == 1
    assert started(host, "keepme") == kept
    assert snapshot(host) == before  # rm leaves the host as it was
    assert not await _tls_answers(host.ip, ca)


async def test_install_on_bare_host_waits_for_apt_lock_then_purge(ssh_host, target, ca) -> None:
    """No Docker: installed from Debian's packages after the apt lock is released."""
    host = ssh_host("bare")
    before = snapshot(host)
    # Another package run holds dpkg's frontend lock for a few seconds, as cloud-init or
    # unattended-upgrades do on a fresh server.
    host.container.exec_run(["perl", "-e", LOCK_HOLDER, "20"], detach=True)
    time.sleep(0.3)
    assert "lock-frontend" in host.sh("ls -l /proc/*/fd 2>/dev/null | grep lock-frontend || true")

    report = await provision_docker_host(target(host), ENGINE, ca, "fresh", [])

    assert report.installed and not report.adopted
    assert report.waited.get("package lock", 0) >= 2
    assert report.distro == "debian" and report.init == "sysv"
    assert tls_client(host.ip, ca).info()["Labels"] == ["lab=iphc"]
    assert refused_without_cert(host.ip, ca)

    # rm without --purge: flotte's config goes, the engine it installed stays.
    await unprovision(target(host))
    assert "docker.io" in host.sh("dpkg -l docker.io")
    assert host.sh("ls /etc/docker/flotte 2>&1 || true").count("No such file") == 1

    # --purge: the host is as it was before flotte came.
    purged = await unprovision(target(host), purge=True)
    assert any("packages flotte installed" in c for c in purged.changes)
    assert snapshot(host) == before


async def test_many_hosts_in_parallel_one_failing(ssh_host, target, ca) -> None:
    """Two good hosts and one whose user may not sudo: each result is reported."""
    good = [ssh_host("docker"), ssh_host("docker")]
    bad = ssh_host("docker")
    bad_before = snapshot(bad)
    jobs = {
        h.name: (lambda h=h, u=u: provision_docker_host(target(h, user=u), ENGINE, ca, h.name, []))
        for h, u in [(good[0], "root"), (bad, "nosudo"), (good[1], "deploy")]
    }
    results = await provision_many(jobs)
    assert isinstance(results[good[0].name], ProvisionReport)
    assert isinstance(results[good[1].name], ProvisionReport)
    err = results[bad.name]
    assert isinstance(err, AuthError)
    assert "cannot use sudo without a password" in str(err)
    assert snapshot(bad) == bad_before  # refused before anything changed
    for h in good:
        assert tls_client(h.ip, ca).ping()


LOCK_HOLDER = r"""
use Fcntl;
open(my $fh, "+<", "/var/lib/dpkg/lock-frontend") or die "open: $!";
my $lock = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0);
fcntl($fh, F_SETLK, $lock) or die "lock: $!";
sleep($ARGV[0]);
"""


def _wait_docker(host) -> None:  # type: ignore[no-untyped-def]
    for _ in range(100):
        if host.container.exec_run(["docker", "info"])[0] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("dockerd did not come back")


async def _tls_answers(ip: str, ca) -> bool:  # type: ignore[no-untyped-def]
    from flotte.dockerapi import Endpoint, ping, ssl_context

    return await ping(Endpoint(host=ip), ssl_context(ca), timeout=2)


async def test_systemd_host(ssh_lab, ssh_host, target, ca, tmp_path) -> None:
    """A server booted by systemd: drop-in keeps the unit's own command (socket activation)."""
    from flotte.drivers.base import DriverContext
    from flotte.drivers.ssh import SSHDriver
    from flotte.models import NodeRecord, NodeState

    host = ssh_host("systemd")
    kept = run_tiny(host, "keepme")
    before = snapshot(host)
    t = target(host, user="deploy")

    report = await provision_docker_host(t, ENGINE, ca, "sd", [])
    assert report.init == "systemd" and report.containers_kept == 1
    assert started(host, "keepme") == kept
    dropin = host.sh("cat /etc/systemd/system/docker.service.d/50-flotte.conf")
    assert "ExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// " in dropin
    assert "--containerd=/run/containerd/containerd.sock $DOCKER_OPTS" in dropin
    assert "-H tcp://0.0.0.0:2376 --config-file /etc/docker/flotte/daemon.json" in dropin
    assert host.sh("systemctl is-active docker.socket").strip() == "active"
    assert tls_client(host.ip, ca).info()["Labels"] == ["lab=iphc"]
    again = await provision_docker_host(t, ENGINE, ca, "sd", [])
    assert again.changes == ["already configured: nothing changed"]

    # stop/start drive the service (and its socket), not the machine
    ctx = DriverContext(home=tmp_path / "m", ca=ca, installation="i", known_hosts=t.known_hosts)
    driver = SSHDriver(ctx)
    node = NodeRecord(
        "sd", "ssh", addresses=[host.ip],
        data={"ssh_host": host.ip, "ssh_user": "deploy", "ssh_key": str(t.key)},
    )  # fmt: skip
    await driver.stop(node)
    assert await driver.state(node) == NodeState.STOPPED
    assert host.sh("systemctl is-active docker.socket || true").strip() == "inactive"
    await driver.start(node)
    assert await driver.state(node) == NodeState.RUNNING
    host.sh("docker start keepme >/dev/null")  # stop stopped it, as docker-machine's did
    kept = started(host, "keepme")

    undone = await unprovision(t)
    assert undone.containers_kept == 1 and started(host, "keepme") == kept
    assert "2376" not in host.sh("ss -ltn")
    assert without_containers(snapshot(host)) == without_containers(before)
