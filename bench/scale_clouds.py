"""The cloud and local cases of bench/scale.py: flotte and its floor on the same peer.

EC2: moto behind a counting proxy that adds the per-call latency. OpenStack: devcloud's
Keystone, Nova, Neutron and Glance each behind a counting proxy (no latency added),
reached through a clouds.yaml entry whose endpoints point at the proxies. Local: a real
Swarm on the local Docker engine, with the host memory it takes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import scale_run
import yaml
from scale_proxy import CountingProxy, delta, phases

AMI, INSTANCE_TYPE = "ami-785db401", "t3.small"


def _per_node(run: scale_run.Run, calls: dict[str, int], size: int) -> dict[str, Any]:
    figures = run.figures()
    total = sum(calls.values())
    out: dict[str, Any] = {
        **figures,
        "api_calls": total,
        "calls_per_node": round(total / size, 3),
        "calls": calls,
        "cpu_ms_per_node": round(1000 * run.cpu_s / size, 2),
    }
    if "rows_written" in figures:
        out["rows_per_node"] = round(figures["rows_written"] / size, 2)
        out["write_statements_per_node"] = round(figures["write_statements"] / size, 2)
    return out


# -- EC2 on moto ------------------------------------------------------------------------


# What flotte's RunInstances carries per instance (drivers/ec2/launch.py): its owner
# marks and launch digest on the instance, its root volume and its interface, a root
# volume of its own size, a security group and the cloud-init document. moto's time per
# instance grows with the tags (bench/README.md): a bare floor is not the same request.
_MARKS = ("flotte:owner", "flotte:cluster", "flotte:nodegroup", "flotte:role", "flotte:launch")


def _same_request(ec2: Any, tag: str) -> dict[str, Any]:
    group = ec2.create_security_group(GroupName=tag, Description="floor")["GroupId"]
    tags = [{"Key": "floor", "Value": tag}, {"Key": "Name", "Value": "big"}]
    tags += [{"Key": k, "Value": "0123456789abcdef"} for k in _MARKS]
    return {
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"VolumeSize": 16, "VolumeType": "gp3", "DeleteOnTermination": True},
            }
        ],
        "SecurityGroupIds": [group],
        "UserData": "#cloud-config\n" + "# flotte\n" * 70,  # flotte's is 650 bytes
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": tags}
            for kind in ("instance", "volume", "network-interface")
        ],
    }


def _ec2_floor(url: str, latency: float, size: int, *, same: bool) -> dict[str, Any]:
    """The least a client can do: one RunInstances for all, DescribeInstances until
    running; ``same``: with what flotte's RunInstances carries (tags, volume, group, user
    data), else a bare instance."""
    import boto3
    from botocore.config import Config

    # moto builds 1,000 instances in Python: on a loaded machine that passes boto3's 60 s.
    config = Config(read_timeout=900, retries={"total_max_attempts": 1})
    with CountingProxy(url, latency=latency) as proxy:
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=proxy.url, config=config)
        tag = f"floor-{os.getpid()}-{size}-{'same' if same else 'bare'}"
        extra = (
            _same_request(ec2, tag)
            if same
            else {"TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "floor", "Value": tag}]}
            ]}
        )  # fmt: skip
        before = proxy.snapshot()
        started = time.monotonic()
        ec2.run_instances(
            ImageId=AMI, InstanceType=INSTANCE_TYPE, MinCount=size, MaxCount=size, **extra
        )
        while True:
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": "tag:floor", "Values": [tag]}],
                PaginationConfig={"PageSize": 1000},
            )
            found = [i for p in pages for r in p["Reservations"] for i in r["Instances"]]
            ids = [i["InstanceId"] for i in found]
            if found and all(i["State"]["Name"] == "running" for i in found):
                break
            time.sleep(2)
        create_s = time.monotonic() - started
        calls = sum(delta(proxy.snapshot(), before).values())
        started = time.monotonic()
        for i in range(0, len(ids), 1000):
            ec2.terminate_instances(InstanceIds=ids[i : i + 1000])
        delete_s = time.monotonic() - started
    return {"create_s": round(create_s, 2), "delete_s": round(delete_s, 2), "api_calls": calls}


@contextlib.contextmanager
def _moto(tmp: str, name: str) -> Iterator[str]:
    """A moto server of its own, warmed: each measurement starts on an empty one, since
    moto's RunInstances slows as it holds more instances (terminated ones too)."""
    import boto3

    from fixtures.moto_server import start_moto

    moto, url = start_moto(log=Path(tmp) / f"moto-{name}.log")
    try:
        # moto loads its AMI and instance-type catalogues on first use: not our time.
        warm = boto3.client("ec2", region_name="us-east-1", endpoint_url=url)
        warm.describe_images(ImageIds=[AMI])
        warm.describe_instance_types(InstanceTypes=[INSTANCE_TYPE])
        yield url
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def ec2_case(size: int, latency: float) -> dict[str, Any]:
    from fixtures.moto_server import FAKE_CREDENTIALS

    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    with tempfile.TemporaryDirectory(prefix="flotte-scale-ec2-") as tmp:
        with _moto(tmp, "floor") as url:
            floor = _ec2_floor(url, latency, size, same=False)
        with _moto(tmp, "same") as url:
            same = _ec2_floor(url, latency, size, same=True)
        with _moto(tmp, "flotte") as url, CountingProxy(url, latency=latency) as proxy:
            env = {"FLOTTE_HOME": f"{tmp}/home"}
            first = scale_run.first_use(env)
            before = proxy.snapshot()
            create = scale_run.flotte(
                ["cluster", "create", "big", "--driver", "ec2", "--master-count", "3",
                 "--node-count", str(size - 3), "--no-provision",
                 "--ec2-endpoint-url", proxy.url, "--ec2-region", "us-east-1",
                 "--ec2-ami", AMI, "--ec2-instance-type", INSTANCE_TYPE,
                 "--ec2-allowed-cidr", "203.0.113.7/32"],
                env,
            ).check()  # fmt: skip
            created = proxy.snapshot()
            delete = scale_run.flotte(["cluster", "delete", "big"], env).check()
            deleted = proxy.snapshot()
    return {
        "nodes": size,
        "latency_ms": round(latency * 1000),
        "floor": floor,
        "floor_same_request": same,
        "first_use": first,
        "create": _per_node(create, delta(created, before), size),
        "delete": _per_node(delete, delta(deleted, created), size),
        "load": scale_run.load(),
    }


# -- OpenStack on devcloud ----------------------------------------------------------------

SERVICES = {"auth": 5000, "compute": 8774, "network": 9696, "image": 9292}


@contextlib.contextmanager
def _room(
    project_name: str, size: int, flavor_id: str, admin_cloud: str = "devcloud"
) -> Iterator[dict[str, int]]:
    """The project's quotas raised by ``size`` nodes' worth (as admin, through the APIs),
    then set back to what they were: devcloud's demo project allows 200 instances and 200
    floating IPs, and other users' servers may hold part of them. Yields the raise."""
    import openstack
    import openstack_cluster as oc

    admin = openstack.connect(cloud=admin_cloud)
    project = admin.identity.find_project(project_name, ignore_missing=False)
    flavor = admin.compute.find_flavor(flavor_id, ignore_missing=False)
    old_c = admin.compute.get_quota_set(project.id)
    old_n = admin.network.get_quota(project.id)
    extra = size + 10
    compute = {
        "instances": extra,
        "cores": extra * flavor.vcpus,
        "ram": extra * flavor.ram,
        "server_group_members": extra,
    }
    network = {"floating_ips": extra, "ports": 2 * extra}
    before_c = {k: int(getattr(old_c, k)) for k in compute}
    before_n = {k: int(getattr(old_n, k)) for k in network}
    # -1 is unlimited: left as it is.
    set_c = {k: before_c[k] + v for k, v in compute.items() if before_c[k] >= 0}
    set_n = {k: before_n[k] + v for k, v in network.items() if before_n[k] >= 0}
    admin.compute.update_quota_set(project.id, **set_c)
    admin.network.update_quota(project.id, **set_n)
    try:
        yield {**compute, **network}
    finally:
        # Set back only what still holds our value: a test may have set the same quota
        # meanwhile (tests/e2e/devcloud/test_overflow_devcloud.py does, and restores
        # its own); writing our old value over theirs would leave theirs for good.
        def restore() -> None:
            now_c = admin.compute.get_quota_set(project.id)
            now_n = admin.network.get_quota(project.id)
            back_c = {k: before_c[k] for k, v in set_c.items() if int(getattr(now_c, k)) == v}
            back_n = {k: before_n[k] for k, v in set_n.items() if int(getattr(now_n, k)) == v}
            if back_c:
                admin.compute.update_quota_set(project.id, **back_c)
            if back_n:
                admin.network.update_quota(project.id, **back_n)

        oc.retrying(restore)
        admin.close()


# devcloud's networks are /24s (ext-net's pool is 198.18.4.0/24): a size past what they
# hold gets a second subnet on formation-net (routed) and on ext-net for the run, sized to
# it; ext-net's pool is given this prefix for it (RFC 2544's benchmarking range too).
ONE_SUBNET = 150
BENCH_EXT_PREFIX = "198.18.16.0/20"


@contextlib.contextmanager
def _address_room(
    project_name: str, size: int, admin_cloud: str = "devcloud"
) -> Iterator[list[str]]:
    """Room for ``size`` more ports and floating IPs (as admin, through the APIs), taken
    away afterwards; yields the CIDRs added."""
    if size <= ONE_SUBNET:
        yield []
        return
    import openstack

    admin = openstack.connect(cloud=admin_cloud)
    net = admin.network
    project = admin.identity.find_project(project_name, ignore_missing=False)
    ext = net.find_network("ext-net", ignore_missing=False)
    tenant = net.find_network("formation-net", project_id=project.id, ignore_missing=False)
    router = net.find_router("formation-router", project_id=project.id, ignore_missing=False)
    tenant_pool = next(iter(net.subnets(network_id=tenant.id))).subnet_pool_id
    ext_pool = net.find_subnet_pool("ext-pool", ignore_missing=False)
    if BENCH_EXT_PREFIX not in ext_pool.prefixes:
        net.update_subnet_pool(ext_pool, prefixes=[*ext_pool.prefixes, BENCH_EXT_PREFIX])
    prefix = 32 - (size + 40).bit_length()  # hosts beyond size: gateway, DHCP, others' use
    made: list[Any] = []
    routed = None
    try:
        for name, network, pool, owner, dhcp in (
            ("scale-bench-ext", ext, ext_pool.id, ext.project_id, False),
            ("scale-bench-tenant", tenant, tenant_pool, project.id, True),
        ):
            made.append(
                net.create_subnet(
                    name=name, network_id=network.id, ip_version=4, subnet_pool_id=pool,
                    prefix_length=prefix, is_dhcp_enabled=dhcp, project_id=owner,
                )
            )  # fmt: skip
        net.add_interface_to_router(router, subnet_id=made[1].id)
        routed = made[1]
        yield [str(s.cidr) for s in made]
    finally:
        if routed is not None:
            net.remove_interface_from_router(router, subnet_id=routed.id)
        for subnet in reversed(made):
            net.delete_subnet(subnet, ignore_missing=True)
        admin.close()


# Seconds each server may take to become ACTIVE in the floor's script: at 100 servers on
# a 2-core devcloud some took longer than its 300 s (2026-12-01). flotte runs with its
# default (200 s, counted on while servers created with it still come up), as a user's.
ACTIVE_WAIT = 1800


def _compute_hosts(admin_cloud: str = "devcloud") -> int:
    """devcloud's fake compute hosts in use (``flotte devcloud up --computes N``): the
    servers spread over them, and Nova's cost per server grows with a host's servers."""
    import openstack

    conn = openstack.connect(cloud=admin_cloud)
    try:
        return sum(
            1
            for s in conn.compute.services(binary="nova-compute")
            if s.state == "up" and s.status == "enabled" and s.host != "devcloud-ironic"
        )
    finally:
        conn.close()


def openstack_case(
    size: int, cloud: str = "devcloud-demo", floor: bool = True, parallelism: int | None = None
) -> dict[str, Any]:
    import openstack_cluster as oc

    hosts = _compute_hosts()

    source = Path(os.environ.get("OS_CLIENT_CONFIG_FILE") or oc._clouds_yaml())
    clouds = yaml.safe_load(source.read_text())["clouds"]
    proxies = {k: CountingProxy(f"http://127.0.0.1:{port}") for k, port in SERVICES.items()}
    for p in proxies.values():
        p.__enter__()
    entry = dict(clouds[cloud])
    entry["auth"] = {**entry["auth"], "auth_url": f"{proxies['auth'].url}/v3"}
    entry["compute_endpoint_override"] = f"{proxies['compute'].url}/v2.1"
    entry["network_endpoint_override"] = f"{proxies['network'].url}/"
    entry["image_endpoint_override"] = f"{proxies['image'].url}/"
    name = "scale-bench"

    def counts() -> dict[str, int]:
        out: dict[str, int] = {}
        for service, p in proxies.items():
            for op, n in p.snapshot().items():
                out[f"{service}: {op}"] = n
        return out

    def since(before: dict[str, int]) -> dict[str, int]:
        now = counts()
        return {k: now[k] - before.get(k, 0) for k in sorted(now) if now[k] - before.get(k, 0)}

    saved_env, saved_cloud = os.environ.get("OS_CLIENT_CONFIG_FILE"), oc.CLOUD
    try:
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="flotte-scale-os-"))
            path = Path(tmp) / "clouds.yaml"
            path.write_text(yaml.safe_dump({"clouds": {**clouds, name: entry}}))
            path.chmod(0o600)
            os.environ["OS_CLIENT_CONFIG_FILE"] = str(path)
            oc.CLOUD = name
            project = clouds[cloud]["auth"]["project_name"]
            flavor_id = oc.BASE_OPTIONS["openstack_flavor_id"]
            room = stack.enter_context(_room(project, size, flavor_id))
            subnets = stack.enter_context(_address_room(project, size))
            base: dict[str, Any] | None = None
            if floor:
                started, cpu, at = time.monotonic(), scale_run.cpu_mark(), []

                def created() -> None:  # the floor's create ends: its delete starts
                    at.append((scale_run.cpu_since(cpu, size), scale_run.cpu_mark()))

                base = oc.run_floor(size, wait=ACTIVE_WAIT, created=created)
                base["machine_cpu"] = at[0][0]
                base["delete_machine_cpu"] = scale_run.cpu_since(at[0][1], size)
                base["api_calls"] = base["calls_create"]  # its own session hook, create only
                # The floor times itself from after its login: these windows are a second early.
                end = started + base["create_s"]
                base["phases"] = phases(proxies, started, end)
                base["delete_phases"] = phases(proxies, end, end + base["delete_s"] + 1)
            env = {"FLOTTE_HOME": f"{tmp}/home", "OS_CLIENT_CONFIG_FILE": str(path)}
            first = scale_run.first_use(env)
            before, started, cpu = counts(), time.monotonic(), scale_run.cpu_mark()
            create = scale_run.flotte(
                ["cluster", "create", "big", "--driver", "openstack", "--master-count", "3",
                 "--node-count", str(size - 3), "--no-provision", "--openstack-cloud", name,
                 *[f"--{k.replace('_', '-')}={v}" for k, v in oc.BASE_OPTIONS.items()],
                 *([f"--parallelism={parallelism}"] if parallelism else [])],
                env,
            )  # fmt: skip
            created, create_more = since(before), {"machine_cpu": scale_run.cpu_since(cpu, size)}
            create_more["phases"] = phases(proxies, started, time.monotonic())
            before, started, cpu = counts(), time.monotonic(), scale_run.cpu_mark()
            # Also after a failed create: what it made goes before the quotas are set back.
            delete = scale_run.flotte(["cluster", "delete", "big"], env)
            deleted, delete_more = since(before), {"machine_cpu": scale_run.cpu_since(cpu, size)}
            delete_more["phases"] = phases(proxies, started, time.monotonic())
            create.check()
            delete.check()
    finally:
        oc.CLOUD = saved_cloud
        if saved_env is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = saved_env
        for p in proxies.values():
            p.__exit__()
    return {
        "nodes": size,
        "cloud": cloud,
        "compute_hosts": hosts,
        "parallelism": parallelism,  # None: the driver paces its own calls
        "quota_raised_by": room,
        "subnets_added": subnets,
        "floor": base,
        "first_use": first,
        "create": {**_per_node(create, created, size), **create_more},
        "delete": {**_per_node(delete, deleted, size), **delete_more},
        "ratio_to_floor": None
        if base is None
        else {
            "create": round(create.wall_s / base["create_s"], 2),
            "delete": round(delete.wall_s / base["delete_s"], 2),
        },
        "load": scale_run.load(),
    }


# -- local Docker -------------------------------------------------------------------------


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    return out


def _rss_of(names: tuple[str, ...]) -> dict[str, int]:
    """Summed RSS (bytes) of host processes by command name (the node dockerds included)."""
    totals = dict.fromkeys(names, 0)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm not in totals:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    totals[comm] += int(line.split()[1]) * 1024
        except OSError:
            continue
    return totals


def _containers_memory(prefix: str) -> int:
    """Memory the nodes' containers use (their cgroups), in bytes."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2}
    total = 0
    for line in out.splitlines():
        name, usage = line.split(" ", 1)
        if prefix not in name:
            continue
        amount = usage.split("/")[0].strip()
        for unit in sorted(units, key=len, reverse=True):
            if amount.endswith(unit):
                total += int(float(amount[: -len(unit)]) * units[unit])
                break
    return total


BUILD_IMAGE = (
    "from flotte.drivers.local import local_client\n"
    "from flotte.drivers.local.image import ensure_node_image\n"
    "ensure_node_image(local_client())\n"
)


def local_case(size: int) -> dict[str, Any]:
    names = ("dockerd", "containerd-shim", "containerd-shim-runc-v2", "containerd")
    with tempfile.TemporaryDirectory(prefix="flotte-scale-local-") as tmp:
        env = {"FLOTTE_HOME": f"{tmp}/home"}
        # The node image is built once and kept: building it is not the create's time.
        scale_run.python(["-c", BUILD_IMAGE], env).check()
        first = scale_run.first_use(env)
        mem0, rss0 = _meminfo(), _rss_of(names)
        name = f"scale{os.getpid()}"
        create = scale_run.flotte(
            ["cluster", "create", name, "--driver", "local", "--master-count",
             str(min(3, size)), "--node-count", str(max(size - 3, 0))],
            env,
        )  # fmt: skip
        mem1, rss1 = _meminfo(), _rss_of(names)
        containers = _containers_memory(name)
        delete = scale_run.flotte(["cluster", "delete", name], env)
    host_delta = mem0["MemAvailable"] - mem1["MemAvailable"]
    mib = 1024 * 1024
    return {
        "nodes": size,
        "first_use": first,
        "create": {**_per_node(create, {}, size), "ok": create.returncode == 0,
                   "error": create.stderr[-500:] if create.returncode else ""},
        "delete": {**delete.figures(), "ok": delete.returncode == 0},
        # After a failed create the nodes were rolled back: there is no memory to show.
        "memory_per_node_mib": None if create.returncode else {
            "host_available_drop": round(host_delta / size / mib, 1),
            "node_containers_cgroup": round(containers / size / mib, 1),
            **{f"{k}_rss_delta": round((rss1[k] - rss0[k]) / size / mib, 1) for k in names},
        },
        "host_mem_available_gib_before": round(mem0["MemAvailable"] / 1024**3, 1),
        "load": scale_run.load(),
    }  # fmt: skip
