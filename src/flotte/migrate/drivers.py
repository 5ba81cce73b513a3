"""docker-machine's drivers, mapped onto flotte's.

``generic`` becomes a machine of flotte's ``ssh`` driver, ``openstack`` and
``amazonec2`` become ``openstack`` and ``ec2`` machines that keep their server or
instance ID (so ``flotte machine rm`` deletes exactly that one, as ``docker-machine rm``
did). Machines of a local hypervisor (VirtualBox, Hyper-V, ...) or of a cloud flotte
has no driver for are taken in for use only: their engine and SSH work, but flotte
never starts, stops or deletes what it cannot manage. The mapping is a table, one
function per docker-machine driver; a driver not in it is not imported.

Field names are docker-machine's (``libmachine/drivers`` ``BaseDriver``, then each
driver's own struct); the record fields are what each flotte driver reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flotte.errors import ConfigError
from flotte.migrate.store import MachineConfig
from flotte.models import Endpoint, NodeRecord

DOCKER_PORT = 2376

# What `flotte machine rm` does with an imported machine: "delete" the server or instance
# (a cloud flotte has a driver for) or "forget" it (a host flotte never set up).
DELETE, FORGET = "delete", "forget"

LOCAL_HYPERVISORS = {
    "virtualbox": "VirtualBox (VBoxManage)",
    "hyperv": "Hyper-V Manager",
    "vmwarefusion": "VMware Fusion",
    "vmwareworkstation": "VMware Workstation",
    "parallels": "Parallels Desktop",
    "xhyve": "xhyve",
    "hyperkit": "hyperkit",
    "kvm": "virsh",
    "qemu": "qemu",
}
CLOUDS_WITHOUT_DRIVER = {
    "azure": "Azure",
    "digitalocean": "DigitalOcean",
    "exoscale": "Exoscale",
    "google": "Google Compute Engine",
    "rackspace": "Rackspace",
    "softlayer": "SoftLayer",
    "vmwarevcloudair": "vCloud Air",
    "vmwarevsphere": "vSphere",
}


@dataclass(frozen=True)
class Mapped:
    """What one docker-machine machine becomes in flotte, before any file is copied.

    ``record`` and ``endpoint`` do not name a key or TLS directory yet: the importer
    copies them into flotte's own directory and fills ``key_field`` in (each flotte
    driver keeps its SSH key under its own name).
    """

    driver: str
    record: NodeRecord
    endpoint: Endpoint
    key_field: str | None  # the record field holding the SSH key's path
    options: dict[str, Any] = field(default_factory=dict)  # public, as a machine spec keeps them
    secrets: dict[str, str] = field(default_factory=dict)  # driver secrets found in config.json
    rm: str = FORGET
    read_only: bool = False
    note: str = ""


def _address(cfg: MachineConfig) -> str:
    ip = cfg.text("IPAddress")
    if not ip:
        raise ConfigError(
            "no IP address recorded (was it ever started? 'docker-machine ip' shows none)"
        )
    return ip


def _ssh(cfg: MachineConfig, default_user: str) -> dict[str, Any]:
    return {
        "ssh_user": cfg.text("SSHUser", default_user),
        "ssh_port": cfg.number("SSHPort", 22),
    }


def _endpoint(host: str, ssh: dict[str, Any], docker_port: int = DOCKER_PORT) -> Endpoint:
    return Endpoint(
        host=host, docker_port=docker_port, ssh_port=ssh["ssh_port"], ssh_user=ssh["ssh_user"]
    )


def _generic(cfg: MachineConfig) -> Mapped:
    host = _address(cfg)
    ssh = _ssh(cfg, "root")
    port = cfg.number("EnginePort", DOCKER_PORT)
    data = {
        "ssh_host": host,
        **ssh,
        "ssh_key": None,
        "engine_install": "skip",
        "docker_port": port,
    }
    return Mapped(
        driver="ssh",
        record=NodeRecord(
            name=cfg.name, driver="ssh", provider_id=host, addresses=[host], data=data
        ),
        endpoint=_endpoint(host, ssh, port),
        key_field="ssh_key",
        options={"ssh_host": host, **ssh},
    )


_OPENSTACK_CONNECT = {
    # docker-machine field -> flotte openstack option (both spell OpenStack's OS_* settings)
    "AuthUrl": "openstack_auth_url",
    "Insecure": "openstack_insecure",
    "CaCert": "openstack_cacert",
    "DomainID": "openstack_domain_id",
    "DomainName": "openstack_domain_name",
    "UserDomainName": "openstack_user_domain_name",
    "ProjectDomainName": "openstack_project_domain_name",
    "Username": "openstack_username",
    "TenantName": "openstack_tenant_name",
    "TenantId": "openstack_tenant_id",
    "Region": "openstack_region",
    "EndpointType": "openstack_endpoint_type",
    "ApplicationCredentialId": "openstack_application_credential_id",
    "ApplicationCredentialName": "openstack_application_credential_name",
}
_OPENSTACK_SECRETS = {
    "Password": "openstack_password",
    "ApplicationCredentialSecret": "openstack_application_credential_secret",
}
_OPENSTACK_INFO = {
    "FlavorName": "openstack_flavor_name",
    "FlavorId": "openstack_flavor_id",
    "ImageName": "openstack_image_name",
    "ImageId": "openstack_image_id",
    "NetworkName": "openstack_net_name",
    "NetworkId": "openstack_net_id",
    "FloatingIpPool": "openstack_floatingip_pool",
    "AvailabilityZone": "openstack_availability_zone",
}


def _pick(cfg: MachineConfig, names: dict[str, str]) -> dict[str, Any]:
    return {
        option: cfg.driver[field_]
        for field_, option in names.items()
        if cfg.driver.get(field_) not in (None, "", False)
    }


def _openstack(cfg: MachineConfig) -> Mapped:
    server_id = cfg.text("MachineId")
    if not server_id:
        raise ConfigError("no OpenStack server ID (Driver.MachineId) recorded")
    host = _address(cfg)
    ssh = _ssh(cfg, "root")
    connect = _pick(cfg, _OPENSTACK_CONNECT)
    data = {
        "server_id": server_id,
        **ssh,
        "private_key": None,
        "keypair_name": cfg.text("KeyPairName") or None,
        # docker-machine made the key pair itself unless it was given one with its key file
        "keypair_owned": not cfg.text("PrivateKeyFile"),
        "owner": {},
        "connect": connect,
        "active_timeout": cfg.number("ActiveTimeout", 200),
    }
    return Mapped(
        driver="openstack",
        record=NodeRecord(
            name=cfg.name, driver="openstack", provider_id=server_id, addresses=[host], data=data
        ),
        endpoint=_endpoint(host, ssh),
        key_field="private_key",
        options={**connect, **_pick(cfg, _OPENSTACK_INFO)},
        secrets={k: str(v) for k, v in _pick(cfg, _OPENSTACK_SECRETS).items()},
        rm=DELETE,
    )


def _ec2_endpoint(cfg: MachineConfig) -> str | None:
    """``--amazonec2-endpoint`` took a host name or a URL."""
    raw = cfg.text("Endpoint")
    if not raw:
        return None
    if "://" in raw:
        return raw
    return f"{'http' if cfg.driver.get('DisableSSL') else 'https'}://{raw}"


def _ec2(cfg: MachineConfig) -> Mapped:
    instance_id = cfg.text("InstanceId")
    if not instance_id:
        raise ConfigError("no EC2 instance ID (Driver.InstanceId) recorded")
    host = _address(cfg)
    ssh = _ssh(cfg, "ubuntu")
    private = cfg.text("PrivateIPAddress")
    endpoint_url = _ec2_endpoint(cfg)
    region = cfg.text("Region", "us-east-1")
    groups = [
        *filter(None, [cfg.text("SecurityGroupId")]),
        *(cfg.driver.get("SecurityGroupIds") or []),
    ]
    data = {
        "cloud": "custom" if endpoint_url else "aws",
        "region": region,
        "endpoint_url": endpoint_url,
        "instance_id": instance_id,
        "instance_type": cfg.text("InstanceType") or None,
        "image_id": cfg.text("AMI") or None,
        "ssh_user": ssh["ssh_user"],
        "key_path": None,
        "keypair_name": cfg.text("KeyName") or None,
        "keypair_owned": not cfg.driver.get("ExistingKey"),
        "security_group_ids": list(dict.fromkeys(groups)),
        "private_address_only": bool(cfg.driver.get("PrivateIPOnly")),
        "private_address": private,
        "owner": {},
    }
    secrets = {
        option: cfg.text(field_)
        for field_, option in (
            ("AccessKey", "ec2_access_key"),
            ("SecretKey", "ec2_secret_key"),
            ("SessionToken", "ec2_session_token"),
        )
        if cfg.text(field_)
    }
    options = {"ec2_region": region}
    if endpoint_url:
        options["ec2_endpoint_url"] = endpoint_url
    return Mapped(
        driver="ec2",
        record=NodeRecord(
            name=cfg.name,
            driver="ec2",
            provider_id=instance_id,
            addresses=[a for a in dict.fromkeys([host, private]) if a],
            data=data,
        ),
        endpoint=_endpoint(host, ssh),
        key_field="key_path",
        options=options,
        secrets=secrets,
        rm=DELETE,
    )


def _use_only(cfg: MachineConfig, note: str) -> Mapped:
    """A host flotte cannot manage: recorded on the ssh driver, which only reaches it."""
    mapped = _generic(cfg)
    mapped.record.data["read_only"] = True
    return Mapped(
        driver=mapped.driver,
        record=mapped.record,
        endpoint=_endpoint(mapped.endpoint.host, _ssh(cfg, "docker")),
        key_field=mapped.key_field,
        options=mapped.options,
        read_only=True,
        note=note,
    )


def _none(cfg: MachineConfig) -> Mapped:
    """docker-machine's ``none`` driver: only an engine URL, no SSH."""
    url = urlsplit(cfg.text("URL"))
    if not url.hostname:
        raise ConfigError("the none driver's URL is missing")
    host = url.hostname
    data = {
        "ssh_host": host,
        "ssh_user": "root",
        "ssh_port": 22,
        "read_only": True,
        "no_ssh": True,
        "docker_port": url.port or DOCKER_PORT,
    }
    return Mapped(
        driver="ssh",
        record=NodeRecord(
            name=cfg.name, driver="ssh", provider_id=host, addresses=[host], data=data
        ),
        endpoint=Endpoint(host=host, docker_port=url.port or DOCKER_PORT),
        key_field=None,
        read_only=True,
        note="an engine URL only (driver none): use only, no SSH",
    )


MAPPERS: dict[str, Callable[[MachineConfig], Mapped]] = {
    "generic": _generic,
    "openstack": _openstack,
    "amazonec2": _ec2,
    "none": _none,
}


def supported() -> str:
    """The docker-machine drivers flotte takes in, for error messages."""
    return ", ".join([*MAPPERS, *LOCAL_HYPERVISORS, *CLOUDS_WITHOUT_DRIVER])


def map_machine(cfg: MachineConfig) -> Mapped:
    """What ``cfg`` becomes in flotte; ConfigError when it cannot be imported."""
    name = cfg.driver_name
    if name in MAPPERS:
        return MAPPERS[name](cfg)
    if name in LOCAL_HYPERVISORS:
        return _use_only(
            cfg,
            f"a {name} VM: use only; start, stop and remove it with "
            f"{LOCAL_HYPERVISORS[name]} (flotte does not drive local hypervisors)",
        )
    if name in CLOUDS_WITHOUT_DRIVER:
        return _use_only(
            cfg,
            f"a {CLOUDS_WITHOUT_DRIVER[name]} server: use only; flotte has no {name} "
            "driver, so remove it with the provider's own tools",
        )
    raise ConfigError(f"driver {name!r} is unknown to flotte (known: {supported()})")
