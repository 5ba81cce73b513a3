"""Docker networks of devcloud's compute agent: one bridge per Neutron network, and ext-net.

Each Neutron network a server has a port on becomes a Docker bridge network with
the same subnet and gateway (``devcloud-<network id>``); ext-net's subnet becomes
``devcloud-ext``, where a container joins at its floating IP so the host reaches
it. Networks no container of this devcloud uses any more are removed.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import docker

from flotte.errors import FlotteError

LABEL = "flotte.devcloud"
EXT_NETWORK = "devcloud-ext"


@dataclass
class DockerNetworks:
    """The agent's Docker networks for one devcloud (``label`` marks them)."""

    conn: Any
    docker: docker.DockerClient
    label: str
    _subnets: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subnet(self, subnet_id: str) -> Any:
        if subnet_id not in self._subnets:
            self._subnets[subnet_id] = self.conn.network.get_subnet(subnet_id)
        return self._subnets[subnet_id]

    def _network(self, name: str, subnet_ids: list[str], neutron_id: str) -> str:
        with self._lock:  # Docker (API 1.41) would happily make two of one name
            return self._network_locked(name, subnet_ids, neutron_id)

    def _network_locked(self, name: str, subnet_ids: list[str], neutron_id: str) -> str:
        import docker.errors

        try:
            self.docker.networks.get(name)
            return name
        except docker.errors.NotFound:
            pass
        labels = {LABEL: self.label, "flotte.devcloud.neutron": neutron_id}
        self._bridge(name, subnet_ids, labels)
        return name

    def _bridge(self, name: str, subnet_ids: list[str], labels: dict[str, str]) -> Any:
        """A bridge network on the IPv4 subnets (Neutron's) and their gateways; one clear
        error when a Docker network that is not devcloud's holds them already."""
        import docker.errors
        import docker.types

        subs = [sub for sub in map(self.subnet, subnet_ids) if sub.ip_version == 4]
        pools = [docker.types.IPAMPool(subnet=sub.cidr, gateway=sub.gateway_ip) for sub in subs]
        try:
            return self.docker.networks.create(
                name,
                driver="bridge",
                ipam=docker.types.IPAMConfig(pool_configs=pools),
                labels=labels,
            )
        except docker.errors.APIError as err:
            if "overlap" not in str(err.explanation or "").lower():
                raise
            wanted = [ipaddress.ip_network(sub.cidr) for sub in subs]
            holders = [
                f"{net.name} ({cidr})"
                for net in self.docker.networks.list()
                for cidr in _subnets(net)
                if any(cidr.overlaps(w) for w in wanted)
            ]
            raise FlotteError(
                f"Docker network {', '.join(holders) or '(unknown)'} holds addresses of "
                f"{', '.join(map(str, wanted))}, so devcloud cannot make {name}",
                hint="remove that network (docker network rm NAME), or give Docker other "
                "address pools (default-address-pools in /etc/docker/daemon.json)",
            ) from err

    def endpoints(self, ports: list[Any]) -> list[tuple[str, str]]:
        """(docker network, IPv4 address) for each of the server's ports."""
        out = []
        for port in ports:
            ips = [ip for ip in port.fixed_ips if self.subnet(ip["subnet_id"]).ip_version == 4]
            if not ips:
                continue
            subnet_ids = sorted({ip["subnet_id"] for ip in ips})
            name = self._network(f"devcloud-{port.network_id[:12]}", subnet_ids, port.network_id)
            out.append((name, ips[0]["ip_address"]))
        return out

    def floating_ip(self, container: Any, ports: list[Any], fips: dict[str, str]) -> None:
        wanted = next((fips[p.id] for p in ports if p.id in fips), None)
        attached = container.attrs["NetworkSettings"]["Networks"].get(EXT_NETWORK)
        current = ((attached or {}).get("IPAMConfig") or {}).get("IPv4Address")
        if wanted == current:
            return
        if attached is not None:
            self.docker.networks.get(EXT_NETWORK).disconnect(container, force=True)
        if wanted is not None:
            self._ext_network().connect(container, ipv4_address=wanted)

    def _ext_network(self) -> Any:
        with self._lock:
            return self._ext_network_locked()

    def _ext_network_locked(self) -> Any:
        import docker.errors

        try:
            return self.docker.networks.get(EXT_NETWORK)
        except docker.errors.NotFound:
            pass
        ext = self.conn.network.find_network("ext-net", ignore_missing=False)
        return self._bridge(EXT_NETWORK, list(ext.subnet_ids), {LABEL: self.label})

    def prune(self) -> None:
        # A network's own "Containers" lists running ones only: a stopped server's
        # container still needs its networks, so ask the containers instead.
        used: set[str] = set()
        flt = {"label": f"{LABEL}={self.label}"}
        for container in self.docker.containers.list(ignore_removed=True, all=True, filters=flt):
            used.update(container.attrs["NetworkSettings"]["Networks"])
        for net in self.docker.networks.list(filters=flt):
            if net.name not in used and net.name != EXT_NETWORK:
                net.remove()


def _subnets(net: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets a Docker network's IPAM holds (the listing leaves them out: reload)."""
    try:
        net.reload()
    except Exception:  # removed meanwhile: it holds nothing
        return []
    configs = (net.attrs.get("IPAM") or {}).get("Config") or []
    return [ipaddress.ip_network(c["Subnet"], strict=False) for c in configs if c.get("Subnet")]
