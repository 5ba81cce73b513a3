"""The fault campaign's OpenStack target: devcloud, in a project of the campaign's own.

Nova and Neutron are reached through two fault proxies (429, 500, 503, answers lost
after the cloud acted, connection resets, latency); Keystone and Glance directly. What
exists is listed with openstacksdk as devcloud's admin, independently of flotte's own
code: servers by their metadata, Neutron resources by their description marks, key
pairs and server groups by the name prefix flotte derives from the installation.

The project is ``devcloud-demo-<tenant>`` (``tests/fixtures/devcloud_tenant.py`` makes
it once and keeps it; ``FLOTTE_FAULT_TENANT``, default ``faults``), so a campaign never
sees the test suite's projects, nor they its servers. One campaign holds a tenant at a
time (a machine-wide lock), which makes it safe to sweep the project of whatever an
interrupted campaign left, at the start and at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from fault_targets import KILL, Armed, Resource, Target

ADMIN, DEMO = "devcloud", "devcloud-demo"
OWNER = "flotte:owner"
MUTATING = ("POST", "PUT", "DELETE", "PATCH")


def _pairs(text: str | None) -> dict[str, str]:
    """``flotte:key=value`` words of a Neutron description (how flotte marks them)."""
    out = {}
    for word in (text or "").split():
        key, sep, value = word.partition("=")
        if sep and key.startswith("flotte:"):
            out[key] = value
    return out


def _name_prefix(installation: str) -> str:
    # Key pairs and server groups have no description or metadata: flotte names them
    # flotte-<first 6 hex of sha256(installation)>-... (drivers/openstack/marks.py).
    return f"flotte-{hashlib.sha256(installation.encode()).hexdigest()[:6]}-"


def _connect(clouds_yaml: Path, cloud: str) -> Any:
    import openstack
    import openstack.config

    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


class OpenStackTarget(Target):
    """devcloud behind the fault proxy; servers made with ``--no-provision`` (fake compute)."""

    name = "openstack"
    node_kind = "server"
    horizon = 15.0
    op_horizons = {"machine_create": 10.0, "machine_rm": 10.0}
    exclusive = True  # one campaign per project: runs share the project's sweep
    faults = (
        KILL,
        "api_429",
        "api_500",
        "api_503",
        "api_lost",
        "api_reset",
        "api_latency",
    )
    preload = ("flotte.drivers.openstack",)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        from fixtures.devcloud import devcloud_dir
        from fixtures.devcloud_tenant import tenant_clouds_yaml
        from fixtures.fault_proxy import FaultProxy
        from fixtures.machine_lock import machine_wide

        root = devcloud_dir()
        _wait_for_devcloud(root / "clouds.yaml")
        self.tenant = os.environ.get("FLOTTE_FAULT_TENANT", "faults")
        self._lock = machine_wide(f"fault-campaign-{self.tenant}")
        self._lock.__enter__()
        tenant_yaml = tenant_clouds_yaml(
            root, self.tenant, lambda: _connect(root / "clouds.yaml", ADMIN)
        )
        assert tenant_yaml is not None, "a named tenant always has projects of its own"
        self.admin = _connect(root / "clouds.yaml", ADMIN)
        self.user = _connect(tenant_yaml, DEMO)
        entry = yaml.safe_load(tenant_yaml.read_text())["clouds"][DEMO]
        self.password = str(entry["auth"]["password"])
        project = self.admin.identity.find_project(entry["auth"]["project_name"])
        self.project_id = str(project.id)
        self.nova = FaultProxy("http://127.0.0.1:8774", seed=None).start()
        self.neutron = FaultProxy("http://127.0.0.1:9696", seed=None).start()
        self.clouds_yaml = workdir / "clouds.yaml"
        self._write_clouds_yaml(entry)
        self.sweep(None)  # what an interrupted campaign left in the project
        # devcloud is shared: another session may restart it in the middle of a run
        self._outages: list[tuple[float, str]] = []
        self._watching = threading.Event()
        threading.Thread(target=self._watch, name="devcloud-watch", daemon=True).start()

    def _watch(self) -> None:
        while not self._watching.wait(2.0):
            for url in SERVICES:
                try:
                    urllib.request.urlopen(url, timeout=10).close()
                except urllib.error.HTTPError:
                    pass  # it answered
                except OSError as err:
                    self._outages.append((time.monotonic(), f"{url}: {err}"[:200]))

    def run_guard(self) -> contextlib.AbstractContextManager[object]:
        # Test modules switch devcloud to Docker-backed servers or Ironic for a while
        # (fixtures.devcloud.MODE_LOCK, held exclusively): runs wait for fake compute.
        from fixtures.devcloud import MODE_LOCK
        from fixtures.machine_lock import machine_wide

        return machine_wide(MODE_LOCK, shared=True)

    def outage_since(self, since: float) -> str:
        seen = [what for when, what in self._outages if when >= since]
        return f"{len(seen)} failed probes, first: {seen[0]}" if seen else ""

    def recover(self) -> None:
        _wait_for_devcloud(None, wait=600.0)
        with contextlib.suppress(Exception):
            self.sweep(None)

    def _write_clouds_yaml(self, entry: dict[str, Any]) -> None:
        """``fz``: the project's entry with its password; ``fz-nopw``: without it (the
        password then comes from OS_PASSWORD, as with a secure.yaml kept elsewhere)."""
        proxied = {
            **entry,
            "compute_endpoint_override": f"{self.nova.url}/v2.1",
            "network_endpoint_override": f"{self.neutron.url}/",
        }
        bare = {**proxied, "auth": {k: v for k, v in entry["auth"].items() if k != "password"}}
        fd = os.open(self.clouds_yaml, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"clouds": {"fz": proxied, "fz-nopw": bare}}, handle)

    # -- the environment of every command ---------------------------------------------
    def secrets(self, token: str) -> dict[str, str]:
        # The project's real password, and an AWS environment for another cloud.
        return {
            "OS_PASSWORD": self.password,
            "AWS_SECRET_ACCESS_KEY": f"awsSk{token}",
            "AWS_SESSION_TOKEN": f"awsSt{token}",
        }

    def env(
        self, home: Path, secrets: dict[str, str], rng: random.Random | None = None
    ) -> dict[str, str]:
        env = {
            "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml),
            "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
            "AWS_SESSION_TOKEN": secrets["AWS_SESSION_TOKEN"],
        }
        if rng is not None and rng.random() < 0.5:
            return {**env, "OS_CLOUD": "fz-nopw", "OS_PASSWORD": secrets["OS_PASSWORD"]}
        return {**env, "OS_CLOUD": "fz"}

    def create_flags(self) -> list[str]:
        return [
            "--openstack-flavor-name", "m1.tiny",
            "--openstack-image-name", "debian-12",
            "--openstack-net-name", "formation-net",
            "--openstack-floatingip-pool", "ext-net",
        ]  # fmt: skip

    # -- what exists, seen as devcloud's admin ----------------------------------------
    def inventory(self, installation: str) -> list[Resource]:
        found = self._by_prefix(self._everything(), installation)
        return [r for r in found if r.tags.get(OWNER) == installation]

    def _everything(self) -> list[Resource]:
        """Every resource of the project that flotte marked, whoever's installation."""
        pid, compute, net = self.project_id, self.admin.compute, self.admin.network
        out = [
            Resource("server", s.name, {**(s.metadata or {}), "id": s.id})
            for s in compute.servers(details=True, all_projects=True, project_id=pid)
            if (s.metadata or {}).get(OWNER)
        ]
        described = {
            "port": net.ports,
            "floating ip": net.ips,
            "security group": net.security_groups,
            "network": net.networks,
            "router": net.routers,
        }
        for kind, lister in described.items():
            for item in lister(project_id=pid):
                marks = _pairs(item.description)
                if marks.get(OWNER):
                    label = getattr(item, "name", "") or getattr(item, "floating_ip_address", "")
                    out.append(Resource(kind, f"{label} ({item.id})", {**marks, "id": item.id}))
        named = [("server group", g) for g in compute.server_groups(all_projects=True)]
        named = [(k, g) for k, g in named if g.project_id == pid]
        named += [("key pair", k) for k in self.user.compute.keypairs()]
        for kind, item in named:
            if item.name.startswith("flotte-"):
                out.append(Resource(kind, item.name, {"prefix": item.name, "id": item.id}))
        return out

    def _by_prefix(self, resources: list[Resource], installation: str) -> list[Resource]:
        prefix = _name_prefix(installation)
        for r in resources:
            if "prefix" in r.tags and r.name.startswith(prefix):
                r.tags[OWNER] = installation
        return resources

    # -- faults -------------------------------------------------------------------------
    def arm(self, fault: str, rng: random.Random, creates: bool, cluster: str) -> Armed:
        from fixtures.fault_proxy import Fault, json_error, reset

        rate = rng.uniform(0.1, 0.4)

        def acts(req: Any) -> bool:
            return str(req.method) in MUTATING

        def error(status: int, **kw: Any) -> Fault:
            body = json_error(f"injected {status}", status)
            return Fault(status, body, "application/json", name=str(status), **kw)

        faults: list[Fault] = []
        if fault == "api_429":
            faults = [error(429, rate=rate)]
        elif fault == "api_500":
            faults = [error(500, rate=rate)]
        elif fault == "api_503":
            faults = [error(503, rate=rate)]
        elif fault == "api_lost":
            faults = [error(500, rate=rate, after=True, match=acts)]
        elif fault == "api_reset":
            after = rng.random() < 0.5
            faults = [reset(rate, after=after, match=acts if after else None)]
        elif fault == "api_latency":
            self.nova.latency = self.neutron.latency = rng.uniform(0.05, 0.3)
        else:
            return Armed(KILL, kill_at=rng.uniform(0.0, self.span()))
        self.nova.set_faults(faults)
        self.neutron.set_faults(faults)
        # an API fault may also come with a kill, as a user's ^C after a slow answer
        kill_at = rng.uniform(0.0, self.span() * 2) if rng.random() < 0.3 else None
        return Armed(fault, kill_at=kill_at)

    def disarm(self) -> None:
        for proxy in (self.nova, self.neutron):
            proxy.set_faults([])
            proxy.latency = 0.0

    def injected(self) -> int:
        return sum(sum(p.stats.injected.values()) for p in (self.nova, self.neutron))

    # -- clean-up -----------------------------------------------------------------------
    def cleanup(self, installation: str) -> None:
        """After a run's checks: delete what its installation left (leaks already counted)."""
        if installation:
            self.sweep(installation)

    def sweep(self, installation: str | None) -> None:
        """Delete flotte's resources of ``installation`` (None: of any) in the project:
        servers first, then what they used."""
        found = self._everything()
        if installation:
            found = self.inventory(installation)
        compute, net = self.admin.compute, self.admin.network
        servers = [r.tags["id"] for r in found if r.kind == "server"]
        for sid in servers:
            with contextlib.suppress(Exception):
                compute.delete_server(sid)
        for sid in servers:
            with contextlib.suppress(Exception):
                compute.wait_for_delete(compute.get_server(sid), wait=180)
        deleters = {
            "floating ip": net.delete_ip,
            "port": net.delete_port,
            "server group": compute.delete_server_group,
            "key pair": self.user.compute.delete_keypair,
            "security group": net.delete_security_group,
            "router": self._delete_router,
            "network": net.delete_network,
        }
        for kind, delete in deleters.items():
            for r in found:
                if r.kind == kind:
                    with contextlib.suppress(Exception):
                        delete(r.tags["id"] if kind != "key pair" else r.name)

    def _delete_router(self, router_id: str) -> None:
        net = self.admin.network
        for port in net.ports(device_id=router_id, device_owner="network:router_interface"):
            with contextlib.suppress(Exception):
                net.remove_interface_from_router(router_id, port_id=port.id)
        net.delete_router(router_id)

    def close(self) -> None:
        self._watching.set()
        with contextlib.suppress(Exception):
            self.sweep(None)
        self.nova.stop()
        self.neutron.stop()
        self.clouds_yaml.unlink(missing_ok=True)  # it holds the project's password
        for conn in (self.admin, self.user):
            with contextlib.suppress(Exception):
                conn.close()
        self._lock.__exit__(None, None, None)


SERVICES = ("http://127.0.0.1:5000/v3", "http://127.0.0.1:8774/", "http://127.0.0.1:9696/")


def _wait_for_devcloud(clouds_yaml: Path | None, wait: float = 120.0) -> None:
    """devcloud's Keystone, Nova and Neutron answer (another session may restart it)."""
    if clouds_yaml is not None and not clouds_yaml.exists():
        raise SystemExit(f"no devcloud at {clouds_yaml.parent}: run 'flotte devcloud up'")
    deadline = time.monotonic() + wait
    for url in SERVICES:
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError as err:
                if time.monotonic() > deadline:
                    raise SystemExit(f"devcloud does not answer at {url}: {err}") from err
                time.sleep(3)
