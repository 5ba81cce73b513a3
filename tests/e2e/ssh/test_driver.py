"""The ssh driver's contract methods on real hosts: checks, ownership, leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest
from ssh_helpers import snapshot

from fixtures import container_exec
from flotte.drivers.base import DriverContext, GroupSpec
from flotte.drivers.ssh import SSHDriver
from flotte.errors import AlreadyExists, AuthError, ProvisionError, UsageError
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
    options = {"ssh_key": str(ssh_lab.key)}
    d = driver(tmp_path, ca, "inst-a", **options)
    owner = Owner(cluster="c", installation="inst-a")
    nodes = tuple(
        NodeSpec(f"c-{i}", Role.WORKER, owner, "ssh", options, index=i, host=h)
        for i, h in enumerate(hosts)
    )
    group = GroupSpec(name="c", owner=owner, options=options, size=3, nodes=nodes)
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
        owner=Owner(machine="m9", installation="inst-b").tags(),
    )
    assert any("belongs to" in w and "left alone" in w for w in report.warnings)
    assert await mine.state(node) == NodeState.RUNNING

    await mine.remove(node)
    assert await mine.leftovers(owner) == []
    assert snapshot(host) == before


def lone(owner: Owner, host: str | None, **options: object) -> GroupSpec:
    spec = NodeSpec(owner.machine or "m", Role.MACHINE, owner, "ssh", options, host=host)
    return GroupSpec(name=spec.name, owner=owner, options=options, nodes=(spec,))


@pytest.mark.parametrize(
    ("host", "options", "words"),
    [
        ("192.0.2.1", {"ssh_port": 0}, "SSH port 0 is not a number from 1 to 65535"),
        ("192.0.2.1:0", {}, "SSH port '0' is not a number"),
        ("hôte.example", {}, "host 'hôte.example' is not a host name or an address"),
        ("web\u200b01", {}, "is not a host name or an address"),
        ("192.0.2.1", {"ssh_key": "DIR"}, "is a directory, not a key file"),
        ("192.0.2.1", {"ssh_key": "BINARY"}, "is not a usable private key"),
        ("192.0.2.1", {"engine_install": "sometimes"}, "--engine-install 'sometimes'"),
    ],
)
async def test_bad_input_is_one_line_before_any_connection(
    ca, tmp_path, host: str, options: dict[str, object], words: str
) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(256)) * 4)
    given = {
        k: {"DIR": str(tmp_path), "BINARY": str(binary)}.get(str(v), v) for k, v in options.items()
    }
    d = driver(tmp_path, ca, "inst-a")
    # 192.0.2.1 (TEST-NET-1) answers nothing: the refusal comes before any attempt.
    with pytest.raises(UsageError) as err:
        await d.check(lone(Owner(machine="m", installation="inst-a"), host, **given))
    text = str(err.value)
    assert words in text and "\n" not in text


@pytest.mark.parametrize("content", [b"[1]", b"\x00\xffnot json", b'{"flotte:owner": 7}'])
async def test_a_foreign_owner_record_is_one_line_naming_the_host(
    ssh_lab, ssh_host, ca, tmp_path, content: bytes
) -> None:  # type: ignore[no-untyped-def]
    host = ssh_host("docker")
    host.sh("mkdir -p /etc/docker/flotte")
    host.container.put_archive("/etc/docker/flotte", _tar("owner.json", content))
    d = driver(tmp_path, ca, "inst-a", ssh_key=str(ssh_lab.key))
    owner = Owner(machine="m1", installation="inst-a")
    with pytest.raises(ProvisionError) as err:
        await d.check(lone(owner, host.ip))
    text = str(err.value)
    assert text.startswith(f"{host.ip}: /etc/docker/flotte/owner.json is not an owner record")
    assert "\n" not in text
    spec = NodeSpec("m1", Role.MACHINE, owner, "ssh", {"ssh_key": str(ssh_lab.key)}, host=host.ip)
    with pytest.raises(ProvisionError):
        await d.create(spec, {})
    # ...and the host's file is left as it was
    assert container_exec.read_file(host.container, "/etc/docker/flotte/owner.json") == content


def _tar(name: str, content: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


async def test_hosts_come_from_the_node_specs_and_sweep_finds_them(
    ssh_lab, ssh_host, ca, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """No host list among the options: each NodeSpec names its host; a node whose record
    was lost (a killed run) is still found by sweep through the driver's host index."""
    hosts = [ssh_host("docker"), ssh_host("docker")]
    before = [snapshot(h) for h in hosts]
    options = {"ssh_key": str(ssh_lab.key)}
    d = driver(tmp_path, ca, "inst-a", **options)
    owner = Owner(cluster="pair", installation="inst-a")
    specs = tuple(
        NodeSpec(f"pair-{i}", Role.WORKER, owner, "ssh", options, index=i, host=h.ip)
        for i, h in enumerate(hosts)
    )
    group = GroupSpec(name="pair", owner=owner, options=options, size=2, nodes=specs)
    await d.check(group)
    for spec in specs:
        node = await d.create(spec, {})
        assert node.data["ssh_host"] == spec.host
        await d.provision(spec, node, EngineOptions())
        assert node.data["owner"] == spec.tags()
    # A fresh driver of the same installation, with no record and no host option.
    later = driver(tmp_path, ca, "inst-a")
    assert len(await later.leftovers(owner)) == 2
    assert await later.sweep(owner) == 2
    assert await later.leftovers(owner) == []
    assert [snapshot(h) for h in hosts] == before
