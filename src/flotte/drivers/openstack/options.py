"""Flags of the OpenStack driver (docker-machine's ``--openstack-*``) and their checks.

Each flag is also read from the ``OS_*`` variable docker-machine used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flotte.drivers.base import DriverOption
from flotte.drivers.openstack.marks import MARK_PREFIX
from flotte.errors import UsageError

P = "openstack-"


def _o(name: str, help_: str, env: str | None = None, **kw: Any) -> DriverOption:
    return DriverOption(name=P + name, help=help_, envvar=env, **kw)


OPTIONS: tuple[DriverOption, ...] = (
    _o("cloud", "Cloud name in clouds.yaml (openstacksdk's search path)", "OS_CLOUD"),
    _o("auth-url", "Keystone URL", "OS_AUTH_URL"),
    _o("insecure", "Do not verify the API's TLS certificate", "OS_INSECURE", is_flag=True),
    _o("cacert", "CA bundle for the API's TLS certificate", "OS_CACERT"),
    _o("domain-id", "Domain ID of the user and project", "OS_DOMAIN_ID"),
    _o("domain-name", "Domain name of the user and project", "OS_DOMAIN_NAME"),
    _o("user-domain-name", "Domain name of the user", "OS_USER_DOMAIN_NAME"),
    _o("project-domain-name", "Domain name of the project", "OS_PROJECT_DOMAIN_NAME"),
    _o("username", "User name", "OS_USERNAME"),
    _o("password", "Password", "OS_PASSWORD", secret=True),
    _o("tenant-name", "Project (tenant) name", "OS_TENANT_NAME"),
    _o("tenant-id", "Project (tenant) ID", "OS_TENANT_ID"),
    _o("project-name", "Project name (same as --openstack-tenant-name)", "OS_PROJECT_NAME"),
    _o("project-id", "Project ID (same as --openstack-tenant-id)", "OS_PROJECT_ID"),
    _o("application-credential-id", "Application credential ID", "OS_APPLICATION_CREDENTIAL_ID"),
    _o(
        "application-credential-name",
        "Application credential name (with the user name)",
        "OS_APPLICATION_CREDENTIAL_NAME",
    ),
    _o(
        "application-credential-secret",
        "Application credential secret",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        secret=True,
    ),
    _o("region", "Region name", "OS_REGION_NAME"),
    _o("endpoint-type", "Endpoint type: publicURL, internalURL, adminURL", "OS_ENDPOINT_TYPE"),
    _o("availability-zone", "Availability zone of the servers", "OS_AVAILABILITY_ZONE"),
    _o("flavor-id", "Flavor ID", "OS_FLAVOR_ID"),
    _o("flavor-name", "Flavor name", "OS_FLAVOR_NAME", template_field="flavor_id"),
    _o("image-id", "Image ID", "OS_IMAGE_ID"),
    _o("image-name", "Image name", "OS_IMAGE_NAME", template_field="image_id"),
    _o("net-id", "Tenant network ID", "OS_NETWORK_ID"),
    _o("net-name", "Tenant network name", "OS_NETWORK_NAME", template_field="fixed_network"),
    _o(
        "floatingip-pool",
        "External network to take a floating IP from",
        "OS_FLOATINGIP_POOL",
        template_field="external_network_id",
    ),
    _o(
        "ip-version",
        "IP version of the address used to reach the node",
        "OS_IP_VERSION",
        type=int,
        default=4,
    ),
    _o("sec-groups", "Extra security groups, comma-separated", "OS_SECURITY_GROUPS"),
    _o("keypair-name", "Existing key pair (needs --openstack-private-key-file)", "OS_KEYPAIR_NAME"),
    _o(
        "private-key-file",
        "Private key to log in with (imported when no key pair is named)",
        "OS_PRIVATE_KEY_FILE",
    ),
    _o("ssh-user", "SSH user of the image", "OS_SSH_USER", default="root"),
    _o("ssh-port", "SSH port", "OS_SSH_PORT", type=int, default=22),
    _o("user-data-file", "cloud-init user data file", "OS_USER_DATA_FILE"),
    _o("config-drive", "Give the server a config drive", "OS_CONFIG_DRIVE", is_flag=True),
    _o("metadata", "Server metadata, key=value,key=value", "OS_METADATA"),
    _o(
        "active-timeout",
        "Seconds to wait for a server to become ACTIVE (longer while others created with it "
        "still come up)",
        "OS_ACTIVE_TIMEOUT",
        type=int,
        default=200,
    ),
    _o(
        "allowed-cidr",
        "Addresses allowed to reach SSH and Docker (comma-separated)",
        "FLOTTE_OPENSTACK_ALLOWED_CIDR",
        default="0.0.0.0/0",
    ),
    _o("create-network", "Make a network, subnet and router to the floating IP pool", is_flag=True),
    _o("subnet-cidr", "CIDR of the network made by --openstack-create-network"),
    _o("dns-nameservers", "DNS servers of that subnet, comma-separated"),
    _o("boot-from-volume", "Boot from a new volume of this many GB (0: no)", type=int, default=0),
    # No default here (vm when unset): a default would always beat a template's
    # Magnum `server_type`, which fills only options left unset.
    _o(
        "server-type",
        "vm (the default), or bm for bare-metal flavors (Ironic)",
        template_field="server_type",
    ),
    _o("server-group-policy", "Policy of the managers' server group", default="soft-anti-affinity"),
)

# Options a later command (stop, rm...) needs to reach the cloud again: stored with the
# node, never the secrets, which come back from clouds.yaml/secure.yaml or OS_* variables.
CONNECT_KEYS = tuple(
    o.key
    for o in OPTIONS
    if not o.secret
    and o.name.removeprefix(P)
    in {
        "cloud",
        "auth-url",
        "insecure",
        "cacert",
        "domain-id",
        "domain-name",
        "user-domain-name",
        "project-domain-name",
        "username",
        "tenant-name",
        "tenant-id",
        "project-name",
        "project-id",
        "application-credential-id",
        "application-credential-name",
        "region",
        "endpoint-type",
    }
)
SECRET_ENV = {
    "openstack_password": "OS_PASSWORD",
    "openstack_application_credential_secret": "OS_APPLICATION_CREDENTIAL_SECRET",
}
DEFAULT_USER_DATA = "#cloud-config\nhostname: {name}\nmanage_etc_hosts: true\n"


def split(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def metadata(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in split(value):
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--openstack-metadata: {pair!r} is not key=value")
        if key.startswith(MARK_PREFIX):
            raise UsageError(
                f"--openstack-metadata: the prefix {MARK_PREFIX!r} is reserved ({key})"
            )
        out[key] = val
    return out


def merge(base: Mapping[str, Any], *layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` overlaid by each layer (group, then node); empty values don't win; defaults."""
    merged = dict(base)
    for layer in layers:
        for key, value in (layer or {}).items():
            if value not in (None, "", (), []):
                merged[key] = value
    for opt in OPTIONS:
        if merged.get(opt.key) in (None, "", (), []) and opt.default is not None:
            merged[opt.key] = opt.default
    return merged


def validate(opts: Mapping[str, Any]) -> None:
    """Raise UsageError for options that cannot work together, before any API call."""
    if not (opts.get("openstack_flavor_id") or opts.get("openstack_flavor_name")):
        raise UsageError("give --openstack-flavor-name or --openstack-flavor-id")
    if not (opts.get("openstack_image_id") or opts.get("openstack_image_name")):
        raise UsageError("give --openstack-image-name or --openstack-image-id")
    if opts.get("openstack_server_type") not in (None, "", "vm", "bm"):
        raise UsageError("--openstack-server-type must be vm or bm")
    if opts.get("openstack_keypair_name") and not opts.get("openstack_private_key_file"):
        raise UsageError(
            "--openstack-keypair-name needs --openstack-private-key-file, the private "
            "half of that key pair"
        )
    for key in ("openstack_private_key_file", "openstack_user_data_file"):
        if opts.get(key) and not Path(str(opts[key])).expanduser().is_file():
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag}: no such file {opts[key]}")
    for cidr in split(opts.get("openstack_allowed_cidr")):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as err:
            raise UsageError(f"--openstack-allowed-cidr: {cidr!r} is not a CIDR") from err
    if opts.get("openstack_create_network") and not opts.get("openstack_floatingip_pool"):
        raise UsageError(
            "--openstack-create-network needs --openstack-floatingip-pool: the external "
            "network its router joins"
        )
    if int(opts.get("openstack_boot_from_volume") or 0) < 0:
        raise UsageError("--openstack-boot-from-volume must be a size in GB, or 0")
    if int(opts.get("openstack_ip_version") or 4) not in (4, 6):
        raise UsageError("--openstack-ip-version must be 4 or 6")
    metadata(opts.get("openstack_metadata"))
