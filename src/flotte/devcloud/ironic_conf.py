"""Settings of devcloud's bare metal (``up --ironic``): ironic.conf and the ironic nova-compute.

Ironic runs as one process (its API and conductor together, no RPC bus) with the
``fake-hardware`` type: power, management and boot are bookkeeping. Deployment and
cleaning go through devcloud's own ``devcloud-container`` deploy and vendor
interfaces (``files/flotte_devcloud_ironic.py``): with Docker-backed compute a node
waits in ``wait call-back`` until the compute agent has started its container, and
in ``clean wait`` until the container is gone. A second nova-compute, host
``devcloud-ironic``, uses Nova's ironic driver, so each Ironic node is a Nova
hypervisor with one unit of ``CUSTOM_BAREMETAL``. Each setting that is not a stock
default is there for a measured reason (see ``docs/devcloud.md``).
"""

from __future__ import annotations

from pathlib import Path

from flotte.devcloud import render
from flotte.devcloud.layout import HOST, IRONIC_HOST, IRONIC_PORT, Layout

Sections = render.Sections

# Devcloud's interfaces, registered in the venv under these names (install.py).
CONTAINER_INTERFACE = "devcloud-container"
RESOURCE_CLASS = "baremetal"


def url() -> str:
    return f"http://{HOST}:{IRONIC_PORT}"


def ironic_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    return {
        "DEFAULT": {
            "auth_strategy": "keystone",
            "host": "devcloud",
            "my_ip": HOST,
            "debug": False,
            # API and conductor in one process: no message bus between them.
            "rpc_transport": "none",
            "enabled_hardware_types": "fake-hardware",
            "enabled_bios_interfaces": "no-bios",
            "enabled_boot_interfaces": "fake",
            "enabled_console_interfaces": "no-console",
            "enabled_deploy_interfaces": f"{CONTAINER_INTERFACE},fake",
            "enabled_firmware_interfaces": "no-firmware",
            "enabled_inspect_interfaces": "no-inspect",
            "enabled_management_interfaces": "fake",
            # No switches to configure: Nova's VIFs are recorded, not wired.
            "enabled_network_interfaces": "noop",
            "enabled_power_interfaces": "fake",
            "enabled_raid_interfaces": "no-raid",
            "enabled_rescue_interfaces": "no-rescue",
            "enabled_storage_interfaces": "noop",
            "enabled_vendor_interfaces": f"{CONTAINER_INTERFACE},no-vendor",
            "default_resource_class": RESOURCE_CLASS,
            # The conductor holds deploys back when free memory is under 1 GiB; a
            # shared test machine dips below that without any real shortage.
            "minimum_memory_warning_only": True,
        },
        "api": {"host_ip": HOST, "port": IRONIC_PORT, "public_endpoint": url()},
        "database": {"connection": render.db_url(layout, pw, "ironic")},
        "keystone_authtoken": render.authtoken(pw, "ironic"),
        # Secure RBAC wants system-scoped tokens for administration; devcloud's admin
        # is project-scoped like everywhere else in it, so the legacy rules apply
        # (a project admin administers Ironic, as the other services allow).
        "oslo_policy": {"enforce_scope": False, "enforce_new_defaults": False},
        "conductor": {
            "automated_clean": True,
            # A node left waiting (no compute agent to boot it) fails instead of
            # hanging for Ironic's default half hour.
            "deploy_callback_timeout": 600,
            "clean_callback_timeout": 600,
            "check_provision_state_interval": 10,
            "sync_power_state_interval": 30,
        },
        "dhcp": {"dhcp_provider": "none"},
        "glance": render.service_auth(pw, "ironic"),
        "neutron": render.service_auth(pw, "ironic"),
        "nova": {**render.service_auth(pw, "ironic"), "send_power_notifications": False},
        "service_catalog": render.service_auth(pw, "ironic"),
        **render.common_sections(layout, "ironic"),
    }


def nova_compute_ironic_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    """Read after nova.conf by the second nova-compute: only what differs."""
    state = layout.state_dir / "nova-ironic"
    return {
        "DEFAULT": {
            "host": IRONIC_HOST,
            "compute_driver": "ironic.IronicDriver",
            "state_path": str(state),
            "instances_path": str(state / "instances"),
            # A node cleaned after a delete is schedulable again once the resource
            # tracker has seen it available: every 5 s, not every minute.
            "update_resources_interval": 5,
            "reserved_host_memory_mb": 0,
            "reserved_host_disk_mb": 0,
        },
        "ironic": {**render.service_auth(pw, "nova"), "api_retry_interval": 1},
        "oslo_concurrency": {"lock_path": str(state / "locks")},
    }


def files(layout: Layout, pw: dict[str, str]) -> dict[Path, str]:
    return {
        layout.etc / "ironic" / "ironic.conf": render.ini(ironic_conf(layout, pw)),
        layout.etc / "nova" / "nova-compute-ironic.conf": render.ini(
            nova_compute_ironic_conf(layout, pw)
        ),
    }


def lock_dirs(layout: Layout) -> list[Path]:
    return [layout.state_dir / "ironic" / "locks", layout.state_dir / "nova-ironic" / "locks"]


def ironic_args(layout: Layout) -> list[str]:
    return [str(layout.bin("ironic")), "--config-file", str(layout.etc / "ironic" / "ironic.conf")]


def nova_compute_args(layout: Layout) -> list[str]:
    return [
        str(layout.bin("nova-compute")),
        *render.conf_args(layout, "nova"),
        "--config-file",
        str(layout.etc / "nova" / "nova-compute-ironic.conf"),
    ]


def dbsync_args(layout: Layout) -> list[str]:
    conf = str(layout.etc / "ironic" / "ironic.conf")
    return [str(layout.bin("ironic-dbsync")), "--config-file", conf, "upgrade"]
