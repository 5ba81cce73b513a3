"""Issue 18: bare metal for real, with Ironic in devcloud (``up --docker --ironic``).

Real Ironic (API and conductor), real Nova with its ironic driver, Docker-backed
nodes: a server on ``bm.small`` lands on an Ironic node, which waits in ``wait
call-back`` until devcloud's agent has started the server's container, and waits in
``clean wait`` after the delete until the container is gone. Checked through
openstacksdk, python-openstackclient with python-ironicclient's ``baremetal``
commands, and flotte's own CLI (the talk's command with ``--openstack-server-type
bm``, a Swarm of bare-metal nodes, bad input).
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli_zygote import run_openstack
from fixtures.devcloud import DevCloud, flotte, wait_for
from flotte.devcloud.ironic import NODE_COUNT, NODE_PREFIX, SCHEDULABLE, SCHEDULABLE_VERSION

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _osc(dc: DevCloud, *args: str, cloud: str | None = None) -> str:
    """python-openstackclient for commands that print nothing (no ``-f json``)."""
    res = run_openstack(["--os-cloud", cloud or dc.admin_cloud, *args], dc.env, timeout=180)
    assert res.returncode == 0, f"openstack {' '.join(args)}: {res.stderr.strip()}"
    return res.stdout


@pytest.fixture
def admin(devcloud_ironic: DevCloud) -> Iterator[Any]:
    conn = devcloud_ironic.connect(devcloud_ironic.admin_cloud)
    yield conn
    conn.close()


def _node_of(admin: Any, server_id: str) -> Any:
    found = [n for n in admin.baremetal.nodes(details=True) if n.instance_id == server_id]
    return found[0] if found else None


def _containers(node_id: str) -> list[Any]:
    import docker

    client = docker.from_env()
    try:
        return list(
            client.containers.list(
                ignore_removed=True, all=True, filters={"label": f"flotte.devcloud.node={node_id}"}
            )
        )
    finally:
        client.close()


def _our_nodes(admin: Any) -> list[Any]:
    return [n for n in admin.baremetal.nodes(details=True) if n.name.startswith(NODE_PREFIX)]


def _schedulable(admin: Any) -> int:
    # as Nova's scheduler asks: a disabled compute service's nodes are not candidates
    answer = admin.placement.get(SCHEDULABLE, headers=SCHEDULABLE_VERSION)
    answer.raise_for_status()
    return len(answer.json()["allocation_requests"])


def _wait_all_available(admin: Any) -> None:
    # Placement learns it from nova-compute's resource tracker (every 5 s); a node
    # comes back from a delete through cleaning, which waits for devcloud's agent.
    try:
        wait_for(
            lambda: (
                all(n.provision_state == "available" for n in _our_nodes(admin))
                and _schedulable(admin) >= NODE_COUNT
            ),
            300,
            "every bare-metal node available and schedulable",
            interval=1,
        )
    except AssertionError as err:
        nodes = [
            f"{n.name}: {n.provision_state}, power {n.power_state}, maintenance "
            f"{n.is_maintenance}, instance {n.instance_id}, error {n.last_error}"
            for n in _our_nodes(admin)
        ]
        hosts = sorted(h.name for h in admin.compute.hypervisors())
        raise AssertionError(
            f"{err}; nodes: {'; '.join(nodes)}; schedulable: {_schedulable(admin)}; "
            f"hypervisors: {hosts}"
        ) from None


def test_enrol_and_provide_a_node(devcloud_ironic: DevCloud, admin: Any) -> None:
    dc = devcloud_ironic
    listed = {
        row["name"]: row for row in dc.openstack("baremetal", "node", "list", cloud=dc.admin_cloud)
    }
    assert {f"{NODE_PREFIX}{i}" for i in range(NODE_COUNT)} <= set(listed)
    assert admin.has_service("baremetal")

    # A node of its own resource class: no bm.small server can land on it meanwhile.
    name = f"enrol-{uuid.uuid4().hex[:8]}"
    made = dc.openstack(
        "baremetal", "node", "create", "--driver", "fake-hardware", "--name", name,
        "--resource-class", "devcloud-test", cloud=dc.admin_cloud,
    )  # fmt: skip
    try:
        assert made["provision_state"] == "enroll"
        node = admin.baremetal.set_node_provision_state(name, "manage", wait=True, timeout=60)
        assert node.provision_state == "manageable"
        admin.baremetal.set_node_provision_state(name, "provide", wait=True, timeout=60)
        shown = dc.openstack("baremetal", "node", "show", name, cloud=dc.admin_cloud)
        assert shown["provision_state"] == "available"
        assert shown["resource_class"] == "devcloud-test"
    finally:
        _osc(dc, "baremetal", "node", "delete", name)
    assert admin.baremetal.find_node(name, ignore_missing=True) is None


def test_server_on_bm_small_follows_its_node(devcloud_ironic: DevCloud, admin: Any) -> None:
    dc = devcloud_ironic
    demo = dc.connect(dc.demo_cloud)
    net = demo.network.find_network(dc.network, ignore_missing=False)
    image = demo.image.find_image(dc.image, ignore_missing=False)
    flavor = demo.compute.find_flavor(dc.bm_flavor, ignore_missing=False)
    name = f"bm-{uuid.uuid4().hex[:8]}"
    server = demo.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}]
    )
    try:
        # While Nova builds, the node goes through deploying and waits for its container.
        seen: list[str] = []

        def active() -> bool:
            node = _node_of(admin, server.id)
            if node is not None and (not seen or seen[-1] != node.provision_state):
                seen.append(node.provision_state)
            status = demo.compute.get_server(server.id).status
            assert status != "ERROR"
            return bool(status == "ACTIVE")

        wait_for(active, 180, "bare-metal server ACTIVE", interval=0.2)
        assert "wait call-back" in seen and seen[-1] == "active", seen
        node = _node_of(admin, server.id)
        assert node.provision_state == "active" and node.power_state == "power on"
        boxes = _containers(node.id)
        assert [b.labels["flotte.devcloud.server"] for b in boxes] == [server.id]
        assert boxes[0].status == "running"

        # The same, seen by python-ironicclient and python-openstackclient.
        shown = dc.openstack("baremetal", "node", "show", "--instance", server.id)
        assert shown["uuid"] == node.id and shown["provision_state"] == "active"
        by_nova = dc.openstack("server", "show", server.id, cloud=dc.admin_cloud)
        assert by_nova["OS-EXT-SRV-ATTR:hypervisor_hostname"] == node.id
        assert by_nova["OS-EXT-SRV-ATTR:host"] == "devcloud-ironic"

        # Delete: cleaning, and the node is available only once its container is gone.
        demo.compute.delete_server(server.id)
        after: list[str] = []

        def cleaned() -> bool:
            current = admin.baremetal.get_node(node.id)
            if not after or after[-1] != current.provision_state:
                after.append(current.provision_state)
            if current.provision_state == "available":
                assert _containers(node.id) == []
                return True
            return False

        wait_for(cleaned, 120, "node available again", interval=0.2)
        assert {"cleaning", "clean wait"} & set(after), after
        assert admin.baremetal.get_node(node.id).instance_id is None
    finally:
        demo.compute.delete_server(server.id, ignore_missing=True)
        demo.compute.wait_for_delete(server, wait=120)
        demo.close()


def _cli(dc: DevCloud, tmp_path: Path) -> tuple[dict[str, str], Callable[..., Any]]:
    """Environment (a home of its own, devcloud's clouds) and flotte's CLI run in it."""
    env = dict(dc.env, FLOTTE_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"))
    return env, functools.partial(flotte, env=env, timeout=900)


def _talk_flags(dc: DevCloud, cloud: str | None = None) -> list[str]:
    # The talk's command with devcloud's values, bare metal instead of a VM flavor.
    net = ["--openstack-net-name", dc.network]
    if cloud == dc.admin_cloud:
        # the admin sees every project's formation-net (test workers have their own):
        # the demo project's one, by ID
        demo = dc.connect(dc.demo_cloud)
        net = ["--openstack-net-id", demo.network.find_network(dc.network).id]
        demo.close()
    return [
        "--openstack-cloud", cloud or dc.demo_cloud, "--openstack-server-type", "bm",
        "--openstack-flavor-name", dc.bm_flavor, "--openstack-image-name", dc.image,
        *net, "--openstack-floatingip-pool", dc.floating_pool,
        "--openstack-ssh-user", dc.ssh_user,
    ]  # fmt: skip


def _images(dc: DevCloud) -> set[str]:
    """IDs of the images the demo project sees."""
    conn = dc.connect(dc.demo_cloud)
    try:
        return {i.id for i in conn.image.images()}
    finally:
        conn.close()


def _servers(dc: DevCloud, name: str) -> list[Any]:
    """The demo project's servers whose name holds ``name``."""
    conn = dc.connect(dc.demo_cloud)
    try:
        return [s for s in conn.compute.servers() if name in s.name]
    finally:
        conn.close()


def _leftovers(dc: DevCloud, name: str, cloud: str | None = None) -> list[str]:
    """Servers, ports and floating IPs of ``name`` (flotte marks each with it)."""
    conn = dc.connect(cloud or dc.demo_cloud)
    try:
        found = [f"server {s.name}" for s in conn.compute.servers() if name in s.name]
        found += [f"port {p.name}" for p in conn.network.ports() if name in (p.name or "")]
        found += [
            f"floating IP {ip.floating_ip_address}"
            for ip in conn.network.ips()
            if name in (ip.description or "")
        ]
        return found
    finally:
        conn.close()


def _swarm_nodes(env: dict[str, str], cluster: str) -> list[dict[str, Any]]:
    """``docker node ls`` of the cluster, through flotte's context (TLS, docker CLI)."""
    out = subprocess.run(
        ["docker", "--context", f"flotte-{cluster}", "node", "ls", "--format", "{{json .}}"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines()]


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), res.stderr
    return last


def test_talks_machine_on_bare_metal(devcloud_ironic: DevCloud, admin: Any, tmp_path: Path) -> None:
    dc = devcloud_ironic
    env, flotte = _cli(dc, tmp_path)
    name = f"bm{uuid.uuid4().hex[:6]}"
    _wait_all_available(admin)
    try:
        flotte("machine", "create", "-d", "openstack", *_talk_flags(dc), name)
        record = json.loads(flotte("machine", "inspect", name, "-f", "json").stdout)
        server_id = record["record"]["provider_id"]
        node = _node_of(admin, server_id)
        assert node is not None and node.provision_state == "active"
        # The TLS-protected engine answers, on a node that booted cloud-init.
        info = subprocess.run(
            ["docker", "--context", f"flotte-{name}", "info", "--format", "{{.Name}}"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip()  # fmt: skip
        assert info == name

        # What differs on bare metal is said: no snapshot, one line, no image made.
        images_before = _images(dc)
        last = _one_line_error(flotte("machine", "snapshot", name, check=False))
        assert "bare-metal" in last and "cannot snapshot" in last
        assert _images(dc) == images_before
    finally:
        flotte("machine", "rm", "-y", name, check=False)
    assert _leftovers(dc, name) == []
    wait_for(
        lambda: admin.baremetal.get_node(node.id).provision_state == "available",
        120,
        "node available after rm",
    )


def test_swarm_of_bare_metal_nodes(devcloud_ironic: DevCloud, admin: Any, tmp_path: Path) -> None:
    dc = devcloud_ironic
    env, flotte = _cli(dc, tmp_path)
    name = f"bs{uuid.uuid4().hex[:5]}"
    _wait_all_available(admin)
    try:
        flotte("cluster", "create", name, "--driver", "openstack", "--node-count", "2",
               *_talk_flags(dc))  # fmt: skip
        swarm = _swarm_nodes(env, name)
        assert len(swarm) == 3 and all(n["Status"] == "Ready" for n in swarm), swarm
        assert sum(1 for n in swarm if n["ManagerStatus"]) == 1
        in_use = [n for n in _our_nodes(admin) if n.provision_state == "active"]
        servers = {s.id for s in _servers(dc, name)}
        assert len(servers) == 3 and {n.instance_id for n in in_use} >= servers
    finally:
        flotte("cluster", "delete", name, check=False)
    assert _leftovers(dc, name) == []
    _wait_all_available(admin)


def test_bad_input_on_bare_metal(devcloud_ironic: DevCloud, admin: Any, tmp_path: Path) -> None:
    dc = devcloud_ironic
    _, flotte = _cli(dc, tmp_path)

    # Bare metal asked for with a VM flavor: refused before anything is made.
    name = f"bv{uuid.uuid4().hex[:6]}"
    flags = _talk_flags(dc)
    flags[flags.index("--openstack-flavor-name") + 1] = dc.flavor
    res = flotte("machine", "create", "-d", "openstack", *flags, name, check=False)
    assert res.returncode == 2
    assert "not a bare-metal flavor" in _one_line_error(res)
    assert _leftovers(dc, name) == []

    # The same through a template with Magnum's server_type: bm.
    tpl = f"bt{uuid.uuid4().hex[:6]}"
    flotte(
        "template", "create", tpl, "--driver", "openstack", "--server-type", "bm",
        "--flavor", dc.flavor, "--image", dc.image, "--fixed-network", dc.network,
    )  # fmt: skip
    res = flotte(
        "cluster", "create", tpl, "--template", tpl, "--openstack-cloud", dc.demo_cloud,
        "--openstack-ssh-user", dc.ssh_user, check=False,
    )  # fmt: skip
    assert res.returncode == 2
    assert "not a bare-metal flavor" in _one_line_error(res)
    assert _leftovers(dc, tpl) == []

    # No free node: Nova's "no valid host" as one line with Ironic's counts (the
    # admin cloud may list the nodes), and what the create made is gone.
    name = f"bn{uuid.uuid4().hex[:6]}"
    nodes = _our_nodes(admin)
    try:
        for node in nodes:
            admin.baremetal.set_node_maintenance(node, reason="test: no free node")
        wait_for(lambda: _schedulable(admin) == 0, 60, "no schedulable node", interval=1)
        flags = _talk_flags(dc, cloud=dc.admin_cloud)
        res = flotte("machine", "create", "-d", "openstack", *flags, name, check=False)
        last = _one_line_error(res)
        assert "No valid host" in last
        assert f"0 available of {len(nodes)}" in last
        assert _leftovers(dc, name, dc.admin_cloud) == []
    finally:
        for node in nodes:
            admin.baremetal.unset_node_maintenance(node)
    _wait_all_available(admin)


def test_vm_managers_and_a_bare_metal_node_group(
    devcloud_ironic: DevCloud, admin: Any, tmp_path: Path
) -> None:
    """Managers on VMs, a worker group on bare metal, one Swarm (Magnum's node groups)."""
    dc = devcloud_ironic
    env, flotte = _cli(dc, tmp_path)
    name = f"mx{uuid.uuid4().hex[:5]}"
    vm = _talk_flags(dc)
    vm[vm.index("--openstack-server-type") + 1] = "vm"
    vm[vm.index("--openstack-flavor-name") + 1] = dc.flavor
    _wait_all_available(admin)
    try:
        flotte("cluster", "create", name, "--driver", "openstack", "--node-count", "1", *vm)
        flotte(
            "cluster", "nodegroup", "create", name, "metal", "--node-count", "1",
            "--openstack-server-type", "bm", "--openstack-flavor-name", dc.bm_flavor,
        )  # fmt: skip
        swarm = _swarm_nodes(env, name)
        assert len(swarm) == 3 and all(n["Status"] == "Ready" for n in swarm), swarm
        servers = {s.name: s.id for s in _servers(dc, name)}
        assert len(servers) == 3, servers
        on_metal = {n.instance_id for n in _our_nodes(admin) if n.instance_id}
        metal = [n for n, sid in servers.items() if sid in on_metal]
        assert metal == [f"{name}-metal-0"], (servers, on_metal)
        groups = json.loads(flotte("cluster", "nodegroup", "list", name, "-f", "json").stdout)
        assert {g["name"] for g in groups} == {"default-master", "default-worker", "metal"}
    finally:
        flotte("cluster", "delete", name, check=False)
    assert _leftovers(dc, name) == []
    _wait_all_available(admin)
