"""Hosts that may not raise resource limits, and command lines flotte did not write.

The sshd test hosts run, like LXC and other containers used as servers, without
CAP_SYS_RESOURCE, and nothing in their image works around it: Debian's own
/etc/init.d/docker fails there (`ulimit: error setting limit`), including when the
docker.io package starts it on install. flotte must still get them to a TLS engine.
"""

from __future__ import annotations

import pytest
from ssh_helpers import refused_without_cert, snapshot, tls_client

from fixtures.sshd_hosts import wait_docker
from flotte.dockerapi import wait_version
from flotte.models import EngineOptions
from flotte.provision import dockerd_service as svc
from flotte.provision.docker_host import provision_docker_host, unprovision

pytestmark = pytest.mark.docker

ENGINE = EngineOptions(labels=("lab=lxc",))


def init_script_fails_as_shipped(host) -> bool:  # type: ignore[no-untyped-def]
    """Debian's init script, run as shipped (no flotte block), cannot start dockerd."""
    out = host.sh(
        "sed '/^if \\[ -f \\/etc\\/default/,/^fi/d' /etc/init.d/docker > /tmp/stock-init; "
        "sh /tmp/stock-init start 2>&1; echo rc=$?",
        check=False,
    )
    return "ulimit" in out and "rc=0" not in out


async def test_a_bare_host_without_cap_sys_resource_gets_a_tls_engine(ssh_host, target, ca) -> None:  # type: ignore[no-untyped-def]
    host = ssh_host("bare")
    caps = host.sh("awk '/^CapEff/ {print $2}' /proc/self/status").strip()
    assert not svc.can_raise_limits(caps)  # the premise: no CAP_SYS_RESOURCE here
    before = snapshot(host)

    report = await provision_docker_host(target(host), ENGINE, ca, "lxc", [])

    assert report.installed and report.init == "sysv"
    assert any("may not raise resource limits" in c for c in report.changes)
    assert tls_client(host.ip, ca).info()["Labels"] == ["lab=lxc"]
    assert refused_without_cert(host.ip, ca)
    assert init_script_fails_as_shipped(host)  # the workaround is what made it work
    # the host's own init script restarts the engine (what a reboot or an admin does)
    host.sh("service docker restart >/dev/null 2>&1")
    assert await wait_version(host.ip, ca, 60)  # raises when it does not answer

    # rm: flotte's TLS setup goes; the engine flotte installed stays, and still starts
    removed = await unprovision(target(host))
    assert any("kept the ulimit workaround" in c for c in removed.changes)
    host.sh("service docker restart >/dev/null 2>&1")
    wait_docker(host)
    assert svc.BLOCK_BEGIN not in host.sh("cat /etc/default/docker")

    # rm --purge: as before flotte came
    await unprovision(target(host), purge=True)
    assert snapshot(host) == before


async def test_an_adopted_engine_is_given_back_without_the_workaround(ssh_host, target, ca) -> None:  # type: ignore[no-untyped-def]
    host = ssh_host("docker")
    before = snapshot(host)
    report = await provision_docker_host(target(host), ENGINE, ca, "adopted", [])
    assert report.adopted and report.restarted
    assert tls_client(host.ip, ca).info()["Labels"] == ["lab=lxc"]
    await unprovision(target(host))
    assert snapshot(host) == before  # no block left: the host as it was
    assert host.sh("docker info --format '{{.ServerVersion}}'").strip()


async def test_a_dockerd_started_with_quotes_in_its_arguments(ssh_host, target, ca) -> None:  # type: ignore[no-untyped-def]
    """Arguments read from the host are data: a lone quote in one does not break parsing."""
    host = ssh_host("docker")
    host.sh(
        "echo 'DOCKER_OPTS=\"--label=owner=o'\"'\"'brien\"' >> /etc/default/docker "
        "&& flotte-test-dockerd restart"
    )
    wait_docker(host)
    assert "--label=owner=o'brien" in host.sh(
        "tr '\\0' ' ' < /proc/$(cat /var/run/docker.pid)/cmdline"
    )
    report = await provision_docker_host(target(host), ENGINE, ca, "quoted", [])
    assert report.adopted
    labels = tls_client(host.ip, ca).info()["Labels"]
    assert set(labels) == {"owner=o'brien", "lab=lxc"}
