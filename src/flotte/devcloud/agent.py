"""devcloud's compute agent: Nova servers realised as containers on the local Docker engine.

Nova keeps its fake compute driver; this agent watches the Nova and Neutron APIs as
admin and makes the world match them, once a second:

- a server that is ACTIVE or SHUTOFF has a container (running or stopped), made
  from the server's image (Glance property ``flotte_container_image``, else the
  guest image of ``guest.py``), with the server's user data and key pair in a
  NoCloud seed so the real cloud-init runs;
- each Neutron network a server has a port on is a Docker bridge network with the
  same subnet and gateway, and the container gets the port's fixed IP on it;
- a floating IP associated with one of the server's ports attaches the container
  to the ``devcloud-ext`` network (ext-net's subnet) at that address, reachable
  from the host;
- a reboot or rebuild in the server's action log restarts or recreates the
  container; a deleted server's container, seed and volume are removed, and a
  network no container uses any more is removed.

Why an agent rather than a Nova compute driver: Nova 34 loads drivers only from
inside its own ``nova.virt`` package and their API is internal; the public APIs
this agent reads are stable. Ingress security group rules are enforced inside each
server (``firewall.py``). Failures to realise a server set it to ERROR (admin
reset-state) and are logged.
"""

from __future__ import annotations

import argparse
import base64
import logging
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flotte.devcloud import firewall
from flotte.devcloud.baremetal import BareMetal
from flotte.devcloud.layout import IRONIC_HOST
from flotte.devcloud.networks import LABEL, DockerNetworks

if TYPE_CHECKING:
    import docker

log = logging.getLogger("flotte.devcloud.agent")

SERVER_LABEL = "flotte.devcloud.server"
IMAGE_PROPERTY = "flotte_container_image"
RUNNING_STATES = {"ACTIVE"}
STOPPED_STATES = {"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED"}
WORKERS = 8  # containers created at once

# Docker-in-Docker where --privileged is refused (see DESIGN.md): everything but
# CAP_SYS_RESOURCE, no seccomp/AppArmor confinement, all devices, real cgroups.
DIND_HOST_CONFIG: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}


def label_value(root: Path) -> str:
    return str(root)


@dataclass
class Agent:
    root: Path
    conn: Any
    docker: docker.DockerClient
    default_image: str
    privileged: bool | None = None
    bare_metal: BareMetal | None = None  # with `up --ironic`
    _actions: dict[str, str] = field(default_factory=dict)  # server -> last action seen
    _updated: dict[str, str] = field(default_factory=dict)  # server -> updated_at seen
    _last: dict[str, list[str]] = field(default_factory=dict)  # actions found this pass
    _failures: dict[str, int] = field(default_factory=dict)  # server -> failed passes
    _firewalls: firewall.Firewalls = field(default_factory=firewall.Firewalls)
    _groups: dict[str, Any] = field(default_factory=dict)
    _members: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._nets = DockerNetworks(self.conn, self.docker, self.label)

    @property
    def label(self) -> str:
        return label_value(self.root)

    def _seed_dir(self, server_id: str) -> Path:
        return self.root / "guests" / server_id / "seed"

    # -- one pass -------------------------------------------------------------

    def reconcile(self) -> None:
        self._last.clear()
        servers = {s.id: s for s in self.conn.compute.servers(details=True, all_projects=True)}
        ports: dict[str, list[Any]] = {}
        for port in self.conn.network.ports():
            if port.device_id in servers:
                ports.setdefault(port.device_id, []).append(port)
        self._groups = {g.id: g for g in self.conn.network.security_groups()}
        self._members = firewall.members_of(p for group in ports.values() for p in group)
        fips = {ip.port_id: ip.floating_ip_address for ip in self.conn.network.ips() if ip.port_id}
        containers = {
            c.labels.get(SERVER_LABEL): c
            for c in self.docker.containers.list(
                ignore_removed=True, all=True, filters={"label": f"{LABEL}={self.label}"}
            )
        }
        nodes = self.bare_metal.nodes() if self.bare_metal else []
        on_node = BareMetal.by_instance(nodes)

        def one(sid: str) -> None:
            server = servers[sid]
            node = on_node.get(sid)
            if node is None and server.compute_host == IRONIC_HOST:
                return  # its node is being torn down: the cleaning pass removes it
            try:
                self._realise(server, ports.get(sid, []), fips, containers.get(sid), node)
                self._failures.pop(sid, None)
            except Exception as err:  # one server's failure must not stop the others
                log.exception("server %s (%s): %s", server.name, sid, err)
                # Three passes in a row: not a race with a port or network being made.
                self._failures[sid] = self._failures.get(sid, 0) + 1
                if self._failures[sid] >= 3:
                    self._fail(server, err)
                    self._failures.pop(sid, None)

        # Side by side: a 30-node cluster must not wait for 30 container creations in turn.
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(one, servers))
        for sid, container in containers.items():
            if sid not in servers:
                self._remove(sid, container)
        if self.bare_metal is not None:
            left = [c for sid, c in containers.items() if sid in servers]
            self.bare_metal.finish_cleaning(
                nodes, left, lambda c: self._remove(c.labels[SERVER_LABEL], c)
            )
        self._nets.prune()
        self._snapshots(containers)

    def _snapshots(self, containers: dict[str | None, Any]) -> None:
        """Finish Nova snapshots: the fake driver leaves the Glance image queued.

        The container is committed as a container image, named in the Glance image's
        ``flotte_container_image`` property (so a server booted from the snapshot
        runs it), and a few bytes are uploaded so the image goes active.
        """
        for image in self.conn.image.images(status="queued"):
            props = dict(image.properties or {})
            # openstacksdk maps instance_uuid to an attribute, not to properties.
            sid = getattr(image, "instance_uuid", None) or props.get("instance_uuid")
            if props.get("image_type") != "snapshot" or sid not in containers:
                continue
            repo = "flotte-devcloud-snap"
            containers[sid].commit(
                repository=repo, tag=image.id, changes=[f'LABEL {LABEL}="{self.label}"']
            )
            # Formats must be set before data; Nova's fake snapshot sets none.
            self.conn.image.update_image(
                image,
                disk_format=image.disk_format or "raw",
                container_format=image.container_format or "bare",
                **{IMAGE_PROPERTY: f"{repo}:{image.id}"},
            )
            # Glance's plain upload of an existing image: PUT /v2/images/{id}/file.
            self.conn.image.put(
                f"/images/{image.id}/file",
                data=f"devcloud snapshot of {sid}\n".encode(),
                headers={"Content-Type": "application/octet-stream"},
            ).raise_for_status()
            log.info("snapshot %s of server %s: %s:%s", image.name, sid, repo, image.id)

    def _realise(
        self,
        server: Any,
        ports: list[Any],
        fips: dict[str, str],
        container: Any | None,
        node: dict[str, Any] | None = None,
    ) -> None:
        if node is not None and BareMetal.waiting_for_boot(node):
            self._boot_on_node(server, ports, container, node)
            return
        status = server.status
        if status not in RUNNING_STATES | STOPPED_STATES:
            return  # BUILD, ERROR, DELETED...: nothing to mirror yet
        if not ports:
            return  # ports not bound yet; next pass
        # On bare metal a rebuild is a new deploy, handled in _boot_on_node.
        if container is not None and node is None and self._rebuilt(server):
            self._remove(server.id, container, keep_seed=False)
            container = None
        if container is None:
            container = self._create(server, ports)
        elif self._rebooted(server) and status in RUNNING_STATES:
            container.restart(timeout=5)
        container.reload()
        if status in RUNNING_STATES and container.status != "running":
            container.start()
        elif status in STOPPED_STATES and container.status == "running":
            container.stop(timeout=5)
        self._nets.floating_ip(container, ports, fips)
        if status in RUNNING_STATES:
            container.reload()
            self._firewalls.apply(container, firewall.render(ports, self._groups, self._members))

    def _boot_on_node(
        self, server: Any, ports: list[Any], container: Any | None, node: dict[str, Any]
    ) -> None:
        """Ironic waits for this server's node to boot: start its container, say so."""
        assert self.bare_metal is not None
        if not ports:
            return  # Nova attaches the ports first; next pass
        if container is not None and not BareMetal.same_deploy(container, node):
            self._remove(server.id, container)  # a new deploy writes a new disk
            container = None
        if container is None:
            container = self._create(server, ports, BareMetal.labels(node))
        container.reload()
        if container.status != "running":
            container.start()
        self.bare_metal.booted(node)

    # -- actions (reboot, rebuild) --------------------------------------------

    def _new_actions(self, server: Any) -> list[str]:
        """Actions recorded since the last pass (the first pass only notes the latest)."""
        actions = list(self.conn.compute.server_actions(server))
        if not actions:
            return []
        latest = actions[0].request_id
        seen = self._actions.get(server.id)
        self._actions[server.id] = latest
        if seen is None:
            return []
        out = []
        for action in actions:
            if action.request_id == seen:
                break
            out.append(action.action)
        return out

    def _rebooted(self, server: Any) -> bool:
        return "reboot" in self._pending(server)

    def _rebuilt(self, server: Any) -> bool:
        return "rebuild" in self._pending(server)

    def _pending(self, server: Any) -> list[str]:
        # The action log is read only when the server changed since the last pass,
        # and at most once per pass (30 servers must not mean 30 calls a second).
        if self._updated.get(server.id) == server.updated_at:
            return list(self._last.get(server.id, []))
        self._updated[server.id] = server.updated_at
        self._last[server.id] = self._new_actions(server)
        return list(self._last[server.id])

    # -- containers -----------------------------------------------------------

    def _image(self, server: Any) -> str:
        image_id = (server.image or {}).get("id")
        if image_id:
            image = self.conn.image.find_image(image_id, ignore_missing=True)
            if image is not None:
                props = dict(image.properties or {})
                if props.get(IMAGE_PROPERTY):
                    return str(props[IMAGE_PROPERTY])
        return self.default_image

    def _write_seed(self, server: Any) -> Path:
        keys: list[str] = []
        if server.key_name:
            kp = self.conn.compute.get_keypair(server.key_name, user_id=server.user_id)
            keys.append(kp.public_key.strip())
        meta = {
            "instance-id": server.id,
            "local-hostname": server.name,
            "public-keys": keys,
        }
        user_data = b"#cloud-config\n{}\n"
        if server.user_data:
            user_data = base64.b64decode(server.user_data)
        seed = self._seed_dir(server.id)
        seed.mkdir(parents=True, exist_ok=True)
        (seed / "meta-data").write_text(yaml.safe_dump(meta))
        (seed / "user-data").write_bytes(user_data)
        return seed

    def _host_config(self, seed: Path) -> dict[str, Any]:
        base: dict[str, Any] = {
            "binds": {
                str(seed): {"bind": "/var/lib/cloud/seed/nocloud", "mode": "ro"},
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            },
            "tmpfs": {"/run": "", "/tmp": ""},
            "init": True,
        }
        if self._can_privilege():
            base["privileged"] = True
        else:
            base.update(DIND_HOST_CONFIG)
        return base

    def _host_config_api(self, seed: Path) -> Any:
        host_config = self.docker.api.create_host_config(**self._host_config(seed))
        if not host_config.get("Privileged"):
            # `--security-opt systempaths=unconfined` in the API: nothing masked or
            # read-only under /proc and /sys (the nested engine writes there).
            host_config["MaskedPaths"] = []
            host_config["ReadonlyPaths"] = []
        return host_config

    def _can_privilege(self) -> bool:
        """Does this engine accept --privileged? (Refused here; normal on a laptop.)"""
        if self.privileged is None:
            import docker.errors

            try:
                probe = self.docker.containers.create(
                    self.default_image,
                    entrypoint=["true"],
                    privileged=True,
                    labels={LABEL: self.label, "flotte.devcloud.probe": "1"},
                )
                try:
                    probe.start()
                    self.privileged = probe.wait(timeout=30).get("StatusCode") == 0
                finally:
                    probe.remove(force=True)
            except docker.errors.APIError:
                self.privileged = False
        return self.privileged

    def _create(self, server: Any, ports: list[Any], labels: dict[str, str] | None = None) -> Any:
        endpoints = self._nets.endpoints(ports)
        if not endpoints:
            raise RuntimeError("no IPv4 port to realise")
        seed = self._write_seed(server)
        api = self.docker.api
        first_net, first_ip = endpoints[0]
        created = api.create_container(
            self._image(server),
            name=f"devcloud-{server.id}",
            hostname=server.name[:63],
            labels={
                LABEL: self.label,
                SERVER_LABEL: server.id,
                "flotte.devcloud.name": server.name,
                **(labels or {}),
            },
            volumes=["/var/lib/docker"],
            host_config=self._host_config_api(seed),
            networking_config=api.create_networking_config(
                {first_net: api.create_endpoint_config(ipv4_address=first_ip)}
            ),
        )
        container = self.docker.containers.get(created["Id"])
        for net, ip in endpoints[1:]:
            self.docker.networks.get(net).connect(container, ipv4_address=ip)
        log.info("server %s (%s): container %s", server.name, server.id, container.short_id)
        return container

    def _remove(self, server_id: str, container: Any, keep_seed: bool = False) -> None:
        container.remove(force=True, v=True)
        self._firewalls.forget(container.id)
        if not keep_seed:
            shutil.rmtree(self.root / "guests" / server_id, ignore_errors=True)
        self._actions.pop(server_id, None)
        log.info("server %s: container removed", server_id)

    def _fail(self, server: Any, err: Exception) -> None:
        try:
            self.conn.compute.reset_server_state(server, "error")
        except Exception:  # the server may be gone already
            log.warning("could not set server %s to ERROR", server.id)


def cleanup(root: Path) -> list[str]:
    """Remove every container and network devcloud's agent made (``devcloud down``)."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception:  # no engine: nothing of ours can exist there
        return []
    removed = []
    flt = {"label": f"{LABEL}={label_value(root)}"}
    for c in client.containers.list(ignore_removed=True, all=True, filters=flt):
        c.remove(force=True, v=True)
        removed.append(c.name)
    for n in client.networks.list(filters=flt):
        n.remove()
        removed.append(n.name)
    for image in client.images.list(filters=flt):  # committed snapshots
        client.images.remove(image.id, force=True)
        removed.extend(image.tags)
    shutil.rmtree(root / "guests", ignore_errors=True)
    client.close()
    return removed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flotte-devcloud-agent")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import docker

    from flotte.devcloud import guest, render, seed
    from flotte.devcloud.layout import Layout

    layout = Layout(args.dir.resolve())
    client = docker.from_env()
    pw = render.load_secrets(layout)
    agent = Agent(layout.root, seed.connect(pw), client, guest.ensure_guest_image(client))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    log.info("watching Nova and Neutron; guest image %s", agent.default_image)
    while not stopping:
        started = time.monotonic()
        try:
            agent.bare_metal = BareMetal.follow(layout, agent.bare_metal, lambda: seed.connect(pw))
            agent.reconcile()
        except Exception as err:  # an API restarting: try again next pass
            log.warning("pass failed: %s", err)
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    sys.exit(0)


if __name__ == "__main__":
    main()
