"""The ssh driver's contract methods on real hosts: checks, ownership, leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest
from ssh_helpers import snapshot

from flotte.drivers.base import DriverContext, GroupSpec
from flotte.drivers.ssh import SSHDriver
from flotte.errors import AlreadyExists, AuthError
from flotte.models import EngineOptions, NodeSpec, NodeState, Owner, Role
from flotte.pki import CertificateAuthority
from flotte.provision.docker_host import unprovision
from flotte.provision.sessions import SSHTarget

pytestmark = pytest.mark.docker


def driver(
    tmp_path: Path, ca: CertificateAuthority, installation: str, **options: object
) -> SSHDriver:
    ctx = DriverContext(
        home=tmp_path / f"machines-{installation}",
        ca=ca,
        installation=installation,
        options=options,
        known_hosts=tmp_path / "known_hosts",
    )
    return SSHDriver(ctx)


async def test_check_reports_every_failing_host(ssh_lab, ssh_host, ca, tmp_path) -> None:
    good, nosudo = ssh_host("docker"), ssh_host("docker")
    hosts = [good.ip, f"nosudo@{nosudo.ip}", ssh_lab.free_ip()]
    d = driver(tmp_path, ca, "inst-a", ssh_key=str(ssh_lab.key))
    owner = Owner(cluster="c", installation="inst-a")
    nodes = tuple(
        NodeSpec(f"c-node-{i}", Role.WORKER, owner, "ssh", {}, host=h) for i, h in enumerate(hosts)
    )
    group = GroupSpec(
        name="c", owner=owner, options={"ssh_key": str(ssh_lab.key)}, size=3, nodes=nodes
    )
    with pytest.raises(AuthError) as err:
        await d.check(group)
    text = str(err.value)
    assert text.startswith("2 of 3 hosts cannot be used: ")
    assert f"{nosudo.ip}: nosudo@{nosudo.ip} cannot use sudo" in text
    assert f"{ssh_lab.free_ip()}: cannot reach" in text
    assert good.ip + ":" not in text
    assert "\n" not in text


async def test_ownership_and_leftovers(ssh_lab, ssh_host, ca, tmp_path) -> None:
    host = ssh_host("docker")
    before = snapshot(host)
    options = {"ssh_host": host.ip, "ssh_key": str(ssh_lab.key)}
    mine = driver(tmp_path, ca, "inst-a", **options)
    owner = Owner(machine="m1", installation="inst-a")
    spec = NodeSpec("m1", Role.MACHINE, owner, "ssh", dict(options), EngineOptions())
    await mine.check(GroupSpec(name="m1", owner=owner, options=options))
    node = await mine.create(spec, {})
    assert node.data["docker_preinstalled"] and node.data["hostname"]
    ep = await mine.provision(spec, node, EngineOptions())
    assert ep.docker_url == f"tcp://{host.ip}:2376"
    assert node.data["provision"]["adopted"] is True
    assert await mine.state(node) == NodeState.RUNNING
    assert await mine.leftovers(owner) == [f"{host.ip}: flotte's Docker TLS configuration"]

    # Another installation may not take the host; nor may another machine of this one.
    theirs = driver(tmp_path, ca, "inst-b", **options)
    other = Owner(machine="m9", installation="inst-b")
    with pytest.raises(AlreadyExists, match="already a Docker host of another flotte installation"):
        await theirs.check(GroupSpec(name="m9", owner=other, options=options))
    with pytest.raises(AlreadyExists, match=r"this flotte installation \(m1\)"):
        await mine.check(
            GroupSpec(name="m2", owner=Owner(machine="m2", installation="inst-a"), options=options)
        )
    # ...and a stale record of another owner does not unconfigure it.
    report = await unprovision(
        SSHTarget(host.ip, key=ssh_lab.key, known_hosts=tmp_path / "known_hosts"),
        owner={"installation": "inst-b", "machine": "m9"},
    )
    assert any("belongs to" in w and "left alone" in w for w in report.warnings)
    assert await mine.state(node) == NodeState.RUNNING

    await mine.remove(node)
    assert await mine.leftovers(owner) == []
    assert snapshot(host) == before
