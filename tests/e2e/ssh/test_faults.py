"""What goes wrong with real servers: keys, dead hosts, changed host keys, cut links, bad OS.

Every failure must be one clear line naming the host and what to do, come quickly (no
retrying what cannot get better), and leave the host as it was.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ssh_helpers import snapshot, tls_client

from fixtures.sshd_hosts import TCPProxy, make_key
from flotte.errors import AuthError, ProvisionError, Unreachable
from flotte.models import EngineOptions
from flotte.provision.docker_host import provision_docker_host
from flotte.provision.known_hosts import KnownHosts
from flotte.provision.sessions import ConnectionDropped, session

pytestmark = pytest.mark.docker

ENGINE = EngineOptions(labels=("fault=yes",))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and len(text) < 400, text
    return text


async def test_wrong_key_is_refused_at_once(ssh_host, target, ca, tmp_path: Path) -> None:
    host = ssh_host("docker")
    (tmp_path / "other").mkdir()
    other = make_key(tmp_path / "other")
    before = snapshot(host)
    started = time.monotonic()
    with pytest.raises(AuthError) as err:
        await provision_docker_host(target(host, key=other), ENGINE, ca, "m", [])
    assert time.monotonic() - started < 5  # refused credentials are not retried
    text = one_line(err.value)
    assert f"root@{host.ip}:22 refused the key {other}" in text
    assert "--ssh-key" in text
    assert snapshot(host) == before


async def test_host_down(ssh_host, target, ca) -> None:
    host = ssh_host("docker")
    t = target(host, attempts=2, backoff=0.2, connect_timeout=2)
    host.container.stop(timeout=1)
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await provision_docker_host(t, ENGINE, ca, "m", [])
    assert time.monotonic() - started < 20
    text = one_line(err.value)
    assert f"cannot reach root@{host.ip}:22 over SSH" in text


async def test_unreachable_address_and_closed_port(ssh_lab, ssh_host, target, ca) -> None:
    host = ssh_host("docker")
    with pytest.raises(Unreachable) as err:
        await provision_docker_host(
            target(host, host=ssh_lab.free_ip(), attempts=1, connect_timeout=2), ENGINE, ca, "m", []
        )
    assert ssh_lab.free_ip() in one_line(err.value)
    started = time.monotonic()
    with pytest.raises(Unreachable) as err:
        await provision_docker_host(
            target(host, port=2222, attempts=3, backoff=0.2), ENGINE, ca, "m", []
        )
    # a refused connection may be a sshd still starting: retried, with backoff (0.2 + 0.4)
    assert time.monotonic() - started >= 0.6
    text = one_line(err.value)
    assert "after 3 attempts" in text and "nothing accepts SSH connections on port 2222" in text


async def test_changed_host_key_is_refused_until_forgotten(ssh_host, target, tmp_path) -> None:
    """The same address answers with another machine's key: refused, file untouched."""
    first, second = ssh_host("docker"), ssh_host("docker")
    proxy = await TCPProxy((first.ip, 22)).start()
    try:
        t = target(first, host="127.0.0.1", port=proxy.port)
        async with session(t) as sess:
            assert (await sess.run("hostname")).stdout.strip() == first.name.removeprefix(
                "flotte-test-"
            )
        known = t.known_hosts_path()
        recorded = known.read_text()
        assert recorded.count(f"[127.0.0.1]:{proxy.port} ") == 1
        assert known.stat().st_mode & 0o777 == 0o600

        proxy.target = (second.ip, 22)  # the host was reinstalled, or someone is in between
        with pytest.raises(AuthError) as err:
            async with session(t):
                pass
        text = one_line(err.value)
        assert f"the SSH host key of 127.0.0.1:{proxy.port} has changed" in text
        assert str(known) in text
        assert known.read_text() == recorded

        assert KnownHosts(known).forget("127.0.0.1", proxy.port) == 1
        async with session(t) as sess:  # trust on first use again
            assert (await sess.run("hostname")).stdout.strip() == second.name.removeprefix(
                "flotte-test-"
            )
    finally:
        await proxy.close()


async def test_connection_dropped_mid_provision_is_resumed(ssh_host, target, ca) -> None:
    host = ssh_host("docker")
    proxy = await TCPProxy((host.ip, 22)).start()
    cuts: list[str] = []

    def progress(_: str, step: str) -> None:
        if step == "configuring dockerd" and not cuts:
            cuts.append(step)
            proxy.cut()  # the link drops while flotte writes the engine's files

    try:
        t = target(host, host="127.0.0.1", port=proxy.port)
        report = await provision_docker_host(
            t, ENGINE, ca, "m", [host.ip], docker_host=host.ip, progress=progress
        )
    finally:
        await proxy.close()
    assert cuts
    assert any("was lost during" in w and "resumed" in w for w in report.warnings)
    assert tls_client(host.ip, ca).info()["Labels"] == ["fault=yes"]


async def test_connection_dropped_then_rerun_converges(ssh_host, target, ca) -> None:
    """Cut between writing the files and restarting dockerd; the next run finishes."""
    host = ssh_host("docker")
    proxy = await TCPProxy((host.ip, 22)).start()

    def progress(_: str, step: str) -> None:
        if step == "restarting dockerd":
            proxy.cut()

    try:
        t = target(host, host="127.0.0.1", port=proxy.port)
        with pytest.raises(ConnectionDropped) as err:
            await provision_docker_host(
                t, ENGINE, ca, "m", [host.ip], docker_host=host.ip, progress=progress, reconnects=0
            )
        assert "re-run the command" in one_line(err.value)
        assert host.sh("ls /etc/docker/flotte/daemon.json")  # the files were written...
        assert "2376" not in host.sh("ss -ltn")  # ...but dockerd was not restarted yet

        report = await provision_docker_host(t, ENGINE, ca, "m", [host.ip], docker_host=host.ip)
    finally:
        await proxy.close()
    assert report.restarted
    assert tls_client(host.ip, ca).info()["Labels"] == ["fault=yes"]


async def test_unknown_os_is_refused_before_any_change(ssh_host, target, ca) -> None:
    host = ssh_host("bare")
    host.sh(
        "rm -f /etc/os-release && printf 'ID=plan9\\nNAME=Plan9\\n"
        'PRETTY_NAME="Plan 9 from Bell Labs"\\n\' > /etc/os-release'
    )
    before = snapshot(host)
    with pytest.raises(ProvisionError) as err:
        await provision_docker_host(target(host), ENGINE, ca, "m", [])
    text = one_line(err.value)
    assert "runs Plan 9 from Bell Labs (ID=plan9)" in text
    assert "cannot install Docker" in text and "--engine-install skip" in text
    assert snapshot(host) == before


async def test_missing_sudo_rights(ssh_host, target, ca) -> None:
    host = ssh_host("docker")
    before = snapshot(host)
    with pytest.raises(AuthError) as err:
        await provision_docker_host(target(host, user="nosudo"), ENGINE, ca, "m", [])
    text = one_line(err.value)
    assert f"nosudo@{host.ip} cannot use sudo without a password" in text
    assert "NOPASSWD" in text
    assert snapshot(host) == before


async def test_engine_install_skip_without_docker(ssh_host, target, ca) -> None:
    host = ssh_host("bare")
    before = snapshot(host)
    with pytest.raises(ProvisionError) as err:
        await provision_docker_host(target(host), ENGINE, ca, "m", [], install="skip")
    assert "Docker is not installed" in one_line(err.value)
    assert snapshot(host) == before


async def test_install_cut_midway_is_finished_by_the_next_run(ssh_host, target, ca) -> None:
    """The link drops while apt installs Docker: the next run finishes, --purge still knows."""
    import asyncio

    from flotte.provision.docker_host import unprovision

    host = ssh_host("bare")
    before = snapshot(host)
    proxy = await TCPProxy((host.ip, 22)).start()
    loop = asyncio.get_running_loop()

    def progress(_: str, step: str) -> None:
        if step.startswith("installing Docker"):
            loop.call_later(1.5, proxy.cut)  # in the middle of apt-get update/install

    try:
        t = target(host, host="127.0.0.1", port=proxy.port)
        with pytest.raises(ConnectionDropped):
            await provision_docker_host(
                t, ENGINE, ca, "m", [host.ip], docker_host=host.ip, progress=progress, reconnects=0
            )
        assert '"state": "installing"' in host.sh("cat /var/lib/flotte/install.json")

        report = await provision_docker_host(t, ENGINE, ca, "m", [host.ip], docker_host=host.ip)
        assert report.installed and not report.adopted
        assert "finished an install an earlier run had started" in report.changes
        assert tls_client(host.ip, ca).info()["Labels"] == ["fault=yes"]

        await unprovision(t, purge=True)
    finally:
        await proxy.close()
    assert snapshot(host) == before
