"""Render the configuration files of devcloud's services, and the command lines that use them.

Everything is written under ``<devcloud>/etc``; nothing goes to ``/etc``. Each
setting below that is not a stock default is there for a measured reason (see
``docs/devcloud.md``).
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import secrets
from pathlib import Path

from flotte.config import write_public, write_secret
from flotte.devcloud.install import c_driver_ready
from flotte.devcloud.layout import (
    API_PORTS,
    API_THREADS,
    API_WORKERS,
    EPMD_PORT,
    HOST,
    RABBIT_DIST_PORT,
    RABBIT_PORT,
    REGION,
    Layout,
)

Sections = dict[str, dict[str, str | int | bool]]

SECRET_NAMES = ("db", "rabbit", "admin", "service", "demo", "alt")


def load_secrets(layout: Layout) -> dict[str, str]:
    """Passwords for this devcloud, made once and kept 0600 in ``secrets.json``."""
    try:
        data: dict[str, str] = json.loads(layout.secrets.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    if not all(name in data for name in SECRET_NAMES):
        for name in SECRET_NAMES:
            data.setdefault(name, secrets.token_urlsafe(18))
        write_secret(layout.secrets, json.dumps(data, indent=2).encode())
    return data


def url(service: str) -> str:
    return f"http://{HOST}:{API_PORTS[service]}"


def ini(sections: Sections) -> str:
    parser = configparser.ConfigParser(interpolation=None)
    for name, values in sections.items():
        parser[name] = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()
        }
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


PASSWORD_HASH_ROUNDS = 4


def db_url(layout: Layout, pw: dict[str, str], name: str) -> str:
    # The unix socket avoids a TCP port (and a clash with a system MariaDB on 3306). The
    # C driver when the venv has it (install.install_c_driver): the services are
    # threaded, not eventlet-patched, so its blocking calls stall no other request.
    driver = "mysqldb" if c_driver_ready(layout) else "pymysql"
    return (
        f"mysql+{driver}://devcloud:{pw['db']}@localhost/{name}"
        f"?unix_socket={layout.mysql_socket}&charset=utf8mb4"
    )


def rabbit_url(pw: dict[str, str]) -> str:
    return f"rabbit://devcloud:{pw['rabbit']}@{HOST}:{RABBIT_PORT}/"


def service_auth(pw: dict[str, str], user: str) -> dict[str, str | int | bool]:
    return {
        "auth_url": url("keystone"),
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": user,
        "password": pw["service"],
        "region_name": REGION,
    }


def authtoken(pw: dict[str, str], user: str) -> dict[str, str | int | bool]:
    section = service_auth(pw, user)
    section["www_authenticate_uri"] = url("keystone")
    # Tokens are validated in-process; no memcached here.
    section["service_token_roles_required"] = True
    return section


def common_sections(layout: Layout, service: str) -> Sections:
    return {
        "oslo_concurrency": {"lock_path": str(layout.state_dir / service / "locks")},
        "oslo_messaging_notifications": {"driver": "noop"},
    }


def keystone_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    keys = layout.state_dir / "keystone"
    return {
        "DEFAULT": {"debug": False},
        "database": {"connection": db_url(layout, pw, "keystone")},
        # bcrypt's cheapest cost: a test bed authenticates on every CLI run and client
        # (0.3 s of Keystone CPU each at the default 12 rounds, 1 ms at 4), and its
        # passwords are random and local. Seeding re-hashes the seeded users' passwords.
        "identity": {"password_hash_rounds": PASSWORD_HASH_ROUNDS},
        # Long-lived tokens: a test session never sees one expire mid-run.
        "token": {"provider": "fernet", "expiration": 86400},
        "fernet_tokens": {"key_repository": str(keys / "fernet-keys")},
        "fernet_receipts": {"key_repository": str(keys / "fernet-keys")},
        "credential": {"key_repository": str(keys / "credential-keys")},
        # Every CLI run and client gets a new token, which each API then validates:
        # without a cache Keystone rebuilds user, project, roles and catalog from the
        # database each time (measured: 0.12 s of CPU to issue, 0.11 s to validate;
        # with it 0.03 s and 0.016 s). In-process, hence one Keystone process.
        "cache": {"enabled": True, "backend": "dogpile.cache.memory"},
        **common_sections(layout, "keystone"),
    }


def glance_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    store = layout.state_dir / "glance"
    return {
        "DEFAULT": {
            "enabled_backends": "fs:file",
            "worker_self_reference_url": url("glance"),
            "image_cache_dir": str(store / "cache"),
        },
        "database": {"connection": db_url(layout, pw, "glance")},
        "keystone_authtoken": authtoken(pw, "glance"),
        "paste_deploy": {
            "flavor": "keystone",
            "config_file": str(layout.etc / "glance" / "glance-api-paste.ini"),
        },
        "glance_store": {"default_backend": "fs"},
        "fs": {"filesystem_store_datadir": str(store / "images")},
        "os_glance_staging_store": {"filesystem_store_datadir": str(store / "staging")},
        "os_glance_tasks_store": {"filesystem_store_datadir": str(store / "tasks")},
        **common_sections(layout, "glance"),
    }


def placement_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    return {
        "api": {"auth_strategy": "keystone"},
        "placement_database": {"connection": db_url(layout, pw, "placement")},
        "keystone_authtoken": authtoken(pw, "placement"),
        **common_sections(layout, "placement"),
    }


def nova_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    state = layout.state_dir / "nova"
    return {
        "DEFAULT": {
            "transport_url": rabbit_url(pw),
            # Like FakeDriver, but keeps its node UUID in state_path/compute_id: plain
            # FakeDriver writes none, and nova-compute then refuses to start again.
            "compute_driver": "fake.FakeDriverWithoutFakeNodes",
            "host": "devcloud",
            "my_ip": HOST,
            "state_path": str(state),
            "instances_path": str(state / "instances"),
            # No agent plugs VIFs; waiting for network-vif-plugged would only slow boots.
            "vif_plugging_is_fatal": False,
            "vif_plugging_timeout": 0,
            "osapi_compute_workers": 1,
            "metadata_workers": 1,
            # A server listing asks each cell (cell0, cell1) from this pool, shared by
            # all of a process's request threads: its default of 5 would queue them.
            "cell_worker_thread_pool_size": 2 * API_THREADS["nova"],
            # In threading mode this sizes nova-compute's build pool (default 10). A
            # fake build is waiting: on Neutron's port binding (1.5-10 s under load), on
            # Placement. Ten at a time made 200 boots wait in line ~20 deep.
            "max_concurrent_builds": 32,
            "max_concurrent_snapshots": 32,  # the pool takes the larger; equal: no warning
        },
        "wsgi": {"api_paste_config": str(layout.etc / "nova" / "api-paste.ini")},
        "api": {"auth_strategy": "keystone"},
        "api_database": {"connection": db_url(layout, pw, "nova_api")},
        "database": {"connection": db_url(layout, pw, "nova")},
        "keystone_authtoken": authtoken(pw, "nova"),
        "placement": service_auth(pw, "placement"),
        "neutron": service_auth(pw, "neutron"),
        # Neutron lets only a caller with the `service` role (sent as a service
        # token) delete a compute port: without it every server delete fails.
        "service_user": {**service_auth(pw, "nova"), "send_service_user_token": True},
        "glance": {"region_name": REGION},
        "scheduler": {"discover_hosts_in_cells_interval": 2, "workers": 1},
        # Two conductors: a boot's scheduling and cell writes are CPU in Python, and
        # one process holds one core at most (the GIL); there are two.
        "conductor": {"workers": 2},
        # ComputeCapabilitiesFilter is left out so that flavor extra specs such as
        # `baremetal=true` (marking --server-type bm flavors) do not fail scheduling.
        "filter_scheduler": {
            # Bare metal (up --ironic): Ironic's nodes weigh the same, so without a
            # shuffle concurrent boots all pick the same node first, and after Placement's
            # 409 the same alternate: two claimed one node and Nova aborted the second
            # build (ci39). Nova's documentation advises this for Ironic.
            "shuffle_best_same_weighed_hosts": True,
            "enabled_filters": ",".join(
                (
                    "ComputeFilter",
                    "ImagePropertiesFilter",
                    "ServerGroupAntiAffinityFilter",
                    "ServerGroupAffinityFilter",
                )
            ),
        },
        **common_sections(layout, "nova"),
    }


def neutron_conf(layout: Layout, pw: dict[str, str]) -> Sections:
    return {
        "DEFAULT": {
            "core_plugin": "ml2",
            "service_plugins": "router",
            "auth_strategy": "keystone",
            "transport_url": rabbit_url(pw),
            "api_paste_config": str(layout.etc / "neutron" / "api-paste.ini"),
            "allow_overlapping_ips": True,
            "state_path": str(layout.state_dir / "neutron"),
            "notify_nova_on_port_status_changes": True,
            "notify_nova_on_port_data_changes": True,
            # There is no DHCP agent: each port, subnet and network change still tried to
            # schedule its network to one and cast to it (3,530 "No more DHCP agents"
            # warnings in one day's log).
            "dhcp_agent_notification": False,
        },
        "database": {"connection": db_url(layout, pw, "neutron")},
        "keystone_authtoken": authtoken(pw, "neutron"),
        "nova": service_auth(pw, "nova"),
        **common_sections(layout, "neutron"),
    }


def ml2_conf() -> Sections:
    return {
        "ml2": {
            "type_drivers": "flat,vxlan",
            "tenant_network_types": "vxlan",
            # Binds every port: there are no agents (see files/flotte_devcloud_ml2.py).
            "mechanism_drivers": "flotte_devcloud",
            "extension_drivers": "port_security",
        },
        "ml2_type_flat": {"flat_networks": "external"},
        "ml2_type_vxlan": {"vni_ranges": "1:10000"},
    }


def rabbit_conf(pw: dict[str, str]) -> str:
    return "\n".join(
        (
            f"listeners.tcp.default = {HOST}:{RABBIT_PORT}",
            "default_user = devcloud",
            f"default_pass = {pw['rabbit']}",
            "loopback_users = none",
            # A small test machine: do not stop publishers on a low-disk/memory alarm.
            "disk_free_limit.absolute = 50MB",
            "vm_memory_high_watermark.relative = 0.8",
            "",
        )
    )


def mariadb_args(layout: Layout) -> list[str]:
    return [
        "/usr/sbin/mariadbd",
        "--no-defaults",
        "--user=root",
        f"--datadir={layout.mysql_data}",
        f"--socket={layout.mysql_socket}",
        f"--pid-file={layout.run / 'mysqld.pidfile'}",
        "--skip-networking",
        "--skip-name-resolve",
        "--skip-log-bin",
        "--max-connections=1000",
        "--character-set-server=utf8mb4",
        "--innodb-buffer-pool-size=128M",
        # A throwaway test cloud: durability traded for fast migrations.
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        "--performance-schema=OFF",
    ]


def rabbit_env(layout: Layout) -> dict[str, str]:
    r = layout.rabbit_dir
    return {
        "HOME": str(r),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": "devcloud@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(RABBIT_PORT),
        "RABBITMQ_DIST_PORT": str(RABBIT_DIST_PORT),
        "ERL_EPMD_ADDRESS": HOST,
        "ERL_EPMD_PORT": str(EPMD_PORT),
        "RABBITMQ_CONFIG_FILE": str(r / "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": str(r / "mnesia"),
        "RABBITMQ_LOG_BASE": str(r / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(r / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(r / "rabbit.pid"),
    }


def api_env(layout: Layout, service: str) -> dict[str, str]:
    etc = layout.etc / service
    env = {"FLOTTE_DEVCLOUD_SERVICE": service}
    if service == "keystone":
        env["OS_KEYSTONE_CONFIG_FILES"] = str(etc / "keystone.conf")
    elif service == "glance":
        env["OS_GLANCE_CONFIG_DIR"] = str(etc)
    elif service == "placement":
        env["OS_PLACEMENT_CONFIG_DIR"] = str(etc)
    elif service == "nova":
        # api-paste.ini first, or Nova reports "No section 'osapi_compute'".
        env["OS_NOVA_CONFIG_DIR"] = str(etc)
        env["OS_NOVA_CONFIG_FILES"] = "api-paste.ini;nova.conf"
    elif service == "neutron":
        env["OS_NEUTRON_CONFIG_DIR"] = str(etc)
        env["OS_NEUTRON_CONFIG_FILES"] = "neutron.conf;plugins/ml2/ml2_conf.ini"
    return env


def api_args(layout: Layout, service: str) -> list[str]:
    return [
        str(layout.bin("gunicorn")),
        "--bind",
        f"{HOST}:{API_PORTS[service]}",
        "--workers",
        str(API_WORKERS[service]),
        "--worker-class",
        "gthread",
        "--threads",
        str(API_THREADS[service]),
        # No keep-alive, as with sync workers: gthread otherwise closes a connection
        # idle for 2 s, and a client reusing it at that moment gets "Connection
        # aborted" on a request it may not retry (seen on a port DELETE). Loopback
        # connections cost little.
        "--keep-alive",
        "0",
        "--timeout",
        "300",
        "--graceful-timeout",
        "5",
        # Nova asks Neutron for the ports of a whole page of servers in one GET whose
        # query names every server: past ~100 servers it outgrows gunicorn's default
        # 4094-byte request line and every server listing fails (seen at 101).
        "--limit-request-line",
        "0",
        "--name",
        f"devcloud-{service}",
        # gunicorn >= 27 otherwise writes a control socket under ~/.gunicorn.
        "--no-control-socket",
        "flotte_devcloud_wsgi:application",
    ]


def conf_args(layout: Layout, service: str) -> list[str]:
    """``--config-file`` arguments for a service's command-line tools and daemons."""
    etc = layout.etc / service
    files = {
        "keystone": [etc / "keystone.conf"],
        "glance": [etc / "glance-api.conf"],
        "placement": [etc / "placement.conf"],
        "nova": [etc / "nova.conf"],
        "neutron": [etc / "neutron.conf", etc / "plugins" / "ml2" / "ml2_conf.ini"],
    }[service]
    return [arg for f in files for arg in ("--config-file", str(f))]


def render_all(layout: Layout, pw: dict[str, str], venv_etc: Path) -> dict[Path, str]:
    """Every config file's path and text."""
    files: dict[Path, str] = {
        layout.etc / "keystone" / "keystone.conf": ini(keystone_conf(layout, pw)),
        layout.etc / "glance" / "glance-api.conf": ini(glance_conf(layout, pw)),
        layout.etc / "placement" / "placement.conf": ini(placement_conf(layout, pw)),
        layout.etc / "nova" / "nova.conf": ini(nova_conf(layout, pw)),
        layout.etc / "neutron" / "neutron.conf": ini(neutron_conf(layout, pw)),
        layout.etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini": ini(ml2_conf()),
        layout.rabbit_dir / "rabbitmq.conf": rabbit_conf(pw),
        layout.rabbit_dir / "enabled_plugins": "[].\n",
        # The APIs' command lines (workers, threads): written, hence hashed, so that
        # changing them restarts the services like a changed setting does.
        layout.etc / "api-commands.json": json.dumps(
            {service: api_args(layout, service) for service in API_PORTS}, indent=2
        )
        + "\n",
    }
    # Paste pipelines ship with the packages (in the venv's etc/); copy them beside.
    for service, name in (
        ("glance", "glance-api-paste.ini"),
        ("nova", "api-paste.ini"),
        ("neutron", "api-paste.ini"),
    ):
        files[layout.etc / service / name] = (venv_etc / service / name).read_text()
    return files


def config_hash(files: dict[Path, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{files[path]}\0".encode())
    return digest.hexdigest()


def write_all(layout: Layout, files: dict[Path, str]) -> None:
    """Write the config files (cheap; done on each ``up`` so changes take effect)."""
    for path, text in files.items():
        # Configs hold passwords: private, like secrets.json.
        write_secret(path, text.encode())
    for d in ("keystone", "glance", "placement", "nova", "neutron", "ironic", "nova-ironic"):
        (layout.state_dir / d / "locks").mkdir(parents=True, exist_ok=True)
    write_public(layout.etc / "README", b"Generated by flotte devcloud; rewritten on each up.\n")
