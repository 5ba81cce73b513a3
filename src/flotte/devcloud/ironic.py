"""devcloud's bare metal (``up --ironic``): Ironic, its nodes, and Nova's ironic compute.

``start`` converges: Ironic installed and migrated, the ``baremetal`` service in
Keystone, Ironic (API and conductor in one process) running, ``NODE_COUNT`` nodes
of hardware type ``fake-hardware`` enrolled and ``available``, a second nova-compute
(host ``devcloud-ironic``, Nova's ironic driver) reporting them to Placement, and
the ``bm.small`` flavor turned into an Ironic flavor (``resources:CUSTOM_BAREMETAL=1``,
VCPU, MEMORY_MB and DISK_GB zeroed) so that it schedules onto those nodes only.
``stop`` undoes what running needs (processes, the flavor), disables the ironic
compute service, and keeps Ironic's data and Nova's records, so the next ``start`` is
a warm one.
"""

from __future__ import annotations

import datetime
from typing import Any

from flotte.devcloud import ironic_conf, procs, seed, services
from flotte.devcloud.layout import IRONIC_HOST, IRONIC_PORT, IRONIC_PROCESSES, Layout
from flotte.errors import FlotteError

NODE_COUNT = 4
NODE_PREFIX = "devcloud-bm-"
# What each node declares (the bm.small flavor's sizes, as an Ironic flavor would).
NODE_PROPERTIES = {"cpus": 8, "memory_mb": 16384, "local_gb": 200, "cpu_arch": "x86_64"}
BM_FLAVOR = "bm.small"
IRONIC_SPECS = {
    "resources:CUSTOM_BAREMETAL": "1",
    "resources:VCPU": "0",
    "resources:MEMORY_MB": "0",
    "resources:DISK_GB": "0",
}
# Without Ironic, bm.small is a fake-compute flavor that only says what it stands for.
FAKE_SPECS = {"baremetal": "true"}
BOOT_MODE_KEY = "flotte_devcloud_boot"  # read by files/flotte_devcloud_ironic.py


def check_port(layout: Layout) -> None:
    if procs.running(layout, "ironic") is None and procs.port_open(IRONIC_PORT):
        raise FlotteError(
            f"port {IRONIC_PORT} is in use by another process (devcloud's ironic needs it)",
            hint="stop that process, or run `flotte devcloud up --no-ironic`",
        )


def sync_database(layout: Layout) -> None:
    services.run_tool(layout, "ironic-dbsync", ironic_conf.dbsync_args(layout), "ironic-dbsync")


def seed_catalog(conn: Any, pw: dict[str, str]) -> None:
    seed.ensure_service_user(conn, pw, "ironic")
    seed.ensure_endpoints(conn, "ironic", "baremetal", ironic_conf.url())


def start_ironic(layout: Layout) -> None:
    if procs.running(layout, "ironic") is None:
        procs.start(layout, "ironic", ironic_conf.ironic_args(layout), cwd=layout.state_dir)
    procs.wait_until(
        api_answers,
        what="Ironic API",
        timeout=120,
        layout=layout,
        process="ironic",
        interval=0.5,
    )


def api_answers() -> bool:
    return services.url_answers(ironic_conf.url())


def start_compute(layout: Layout) -> None:
    if procs.running(layout, "nova-compute-ironic") is None:
        procs.start(
            layout,
            "nova-compute-ironic",
            ironic_conf.nova_compute_args(layout),
            cwd=layout.state_dir,
        )


def _mac(index: int) -> str:
    # Locally administered unicast addresses (52:54:00 is QEMU's, familiar in labs).
    return f"52:54:00:de:bc:{index:02x}"


def enrol_nodes(conn: Any, count: int = NODE_COUNT) -> None:
    """Enrol ``count`` nodes (find or create) and make each one ``available``.

    A node that is in use (``active``), or on its way, is left alone; one left in a
    failed state by an interrupted run, or deployed for a server Nova no longer has,
    is brought back through cleaning.
    """
    bm = conn.baremetal
    for index in range(count):
        name = f"{NODE_PREFIX}{index}"
        node = bm.find_node(name, ignore_missing=True)
        if node is None:
            node = bm.create_node(
                name=name,
                driver="fake-hardware",
                resource_class=ironic_conf.RESOURCE_CLASS,
                properties=NODE_PROPERTIES,
                deploy_interface=ironic_conf.CONTAINER_INTERFACE,
                vendor_interface=ironic_conf.CONTAINER_INTERFACE,
                network_interface="noop",
                extra={BOOT_MODE_KEY: "instant"},
                provision_state="enroll",
            )
        if not list(bm.ports(node_uuid=node.id)):
            bm.create_port(node_uuid=node.id, address=_mac(index))
        if node.power_state is None:
            # Nova's ironic driver counts a node of unknown power state as unusable
            # (its one CUSTOM_BAREMETAL reserved); a fake BMC knows only what it is told.
            bm.set_node_power_state(node, "power off", wait=True, timeout=60)
        _make_available(conn, node)


def _orphaned(conn: Any, node: Any) -> bool:
    """True when the node holds a server Nova no longer has.

    Nova deletes a server only in its database while its compute host is down (an
    earlier ``up`` without Ironic); the node then stays deployed for nobody.
    """
    if not node.instance_id:
        return False
    from openstack.exceptions import NotFoundException

    try:
        conn.compute.get_server(node.instance_id)
    except NotFoundException:
        return True
    return False


def _make_available(conn: Any, node: Any) -> None:
    bm = conn.baremetal
    state = node.provision_state
    if state in ("active", "deploy failed") and _orphaned(conn, node):
        # undeploy: Ironic forgets the instance and cleans the node back to available
        bm.set_node_provision_state(node, "deleted", wait=False)
        return
    if state in ("enroll", "clean failed", "inspect failed"):
        node = bm.set_node_provision_state(node, "manage", wait=True, timeout=120)
        state = node.provision_state
    if state == "manageable":
        # Cleaning may wait for the compute agent (set_boot_mode), which starts later.
        bm.set_node_provision_state(node, "provide", wait=False)
    elif state == "deploy failed" and not node.instance_id:
        bm.set_node_provision_state(node, "deleted", wait=False)


def nodes(conn: Any) -> list[Any]:
    return [n for n in conn.baremetal.nodes(details=True) if n.name.startswith(NODE_PREFIX)]


def set_boot_mode(conn: Any, container: bool) -> None:
    """Mark devcloud's nodes: deploy and clean wait for the compute agent, or not.

    Without the agent, a node already waiting for it is let go at once (its
    container, if any, went with the agent).
    """
    mode = "container" if container else "instant"
    for node in nodes(conn):
        if (node.extra or {}).get(BOOT_MODE_KEY) != mode:
            conn.baremetal.patch_node(
                node, [{"op": "add", "path": f"/extra/{BOOT_MODE_KEY}", "value": mode}]
            )
        waiting = {"wait call-back": "booted", "clean wait": "wiped"}.get(node.provision_state)
        if not container and waiting:
            conn.baremetal.call_node_vendor_passthru(node, "POST", waiting)


def set_flavor(conn: Any, ironic: bool) -> None:
    """bm.small as an Ironic flavor (with Ironic on) or as a marked fake one."""
    flavor = conn.compute.find_flavor(BM_FLAVOR, ignore_missing=True)
    if flavor is None:
        return
    wanted, unwanted = (IRONIC_SPECS, FAKE_SPECS) if ironic else (FAKE_SPECS, IRONIC_SPECS)
    current = conn.compute.fetch_flavor_extra_specs(flavor).extra_specs or {}
    for key in unwanted:
        if key in current:
            conn.compute.delete_flavor_extra_specs_property(flavor, key)
    missing = {k: v for k, v in wanted.items() if current.get(k) != v}
    if missing:
        conn.compute.create_flavor_extra_specs(flavor, missing)


# What Nova's scheduler asks Placement for a bare-metal server: a node's resource class,
# never on a disabled compute service's providers (the trait Nova sets on them).
SCHEDULABLE = (
    "/allocation_candidates?resources=CUSTOM_BAREMETAL:1&required=!COMPUTE_STATUS_DISABLED"
)
SCHEDULABLE_VERSION = {"OpenStack-API-Version": "placement 1.22"}  # forbidden traits


def wait_schedulable(conn: Any, layout: Layout, since: datetime.datetime) -> None:
    """Until Nova maps the ironic host, its compute service has reported since ``since``
    and Placement offers a bare-metal node as Nova's scheduler would ask for one.

    A compute service reports only after its first resource update. Placement's answer
    before that is the previous run's; the first update may then withdraw every node for
    half a minute (CI: "No valid host" right after ``up --ironic`` returned)."""

    def ready() -> bool:
        hosts = {h.name for h in conn.compute.hypervisors(details=True)}
        if not any(n.id in hosts for n in nodes(conn)):
            services.discover_hosts(layout)
            return False
        if not any(_reported_since(svc, since) for svc in _computes(conn)):
            return False
        answer = conn.placement.get(SCHEDULABLE, headers=SCHEDULABLE_VERSION)
        answer.raise_for_status()
        return bool(answer.json().get("allocation_requests"))

    procs.wait_until(
        ready,
        what="bare-metal nodes in Nova and Placement",
        timeout=180,
        layout=layout,
        process="nova-compute-ironic",
        interval=2,
    )


def start(layout: Layout, pw: dict[str, str], conn: Any, *, synced: bool) -> Any:
    """Converge to running bare metal; returns a connection whose catalog has Ironic."""
    if not synced:
        sync_database(layout)
    seed_catalog(conn, pw)
    conn.close()
    conn = seed.connect(pw)  # a token whose catalog lists the baremetal endpoint
    start_ironic(layout)
    # Enabled before its process starts: Nova syncs the COMPUTE_STATUS_DISABLED trait
    # of a service enabled while down only when that service next starts, and one
    # enabled after a start that read "disabled" kept the trait (CI: "No valid host"
    # for a minute after ``up --ironic`` returned).
    since = datetime.datetime.now(datetime.UTC)
    _enable_compute(conn)
    start_compute(layout)
    enrol_nodes(conn)
    set_flavor(conn, ironic=True)
    wait_schedulable(conn, layout, since)
    return conn


def _computes(conn: Any) -> list[Any]:
    """Nova's service record of the ironic compute (none before its first start)."""
    return list(conn.compute.services(host=IRONIC_HOST, binary="nova-compute"))


def _reported_since(svc: Any, since: datetime.datetime) -> bool:
    """The service is up and its last report is later than ``since`` (Nova: UTC)."""
    if svc.state != "up" or not svc.updated_at:
        return False
    when = datetime.datetime.fromisoformat(str(svc.updated_at))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when > since


def _enable_compute(conn: Any) -> None:
    """The ironic compute service back in use, if ``stop`` disabled it."""
    for svc in _computes(conn):
        if svc.status == "disabled":
            conn.compute.enable_service(svc)


def stop(layout: Layout, conn: Any | None) -> list[str]:
    """Stop Ironic's processes; with a connection also disable the ironic compute host.

    Its Nova service record is disabled, not deleted: deleted, the next ``start``
    made a new one, and Nova's resource tracker undeleted each node's compute record
    and moved it to the new service a minute later; in that minute Nova put two
    servers on one bare-metal node while Placement held them on two (CI, stop 24:
    "Failed to reserve node", "Failure prepping block device").

    It is disabled while its nova-compute still runs: nova-api asks that service (a
    call over RPC) to mark its providers disabled, and a stopped service left the API
    waiting out the RPC timeout (58 s of the 71 s a ``up --no-ironic`` took).
    """
    try:
        if conn is not None:
            set_flavor(conn, ironic=False)
            for svc in _computes(conn):
                if svc.status != "disabled":
                    conn.compute.disable_service(svc, disabled_reason="devcloud: bare metal off")
    finally:  # an API that fails leaves no Ironic process running, as before
        stopped = stop_processes(layout)
    return stopped


def stop_processes(layout: Layout) -> list[str]:
    """Stop Ironic's processes, nova-compute's first; the names of those that ran."""
    return [name for name in reversed(IRONIC_PROCESSES) if procs.stop(layout, name)]
