"""Start devcloud's processes and prepare their databases.

MariaDB and RabbitMQ come from Debian but are run by hand (no systemd on these
machines), bound to a unix socket and 127.0.0.1, with their data under the devcloud
directory. Database migrations run once per data directory and constraints file.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flotte.devcloud import procs, render
from flotte.devcloud.layout import (
    API_PORTS,
    DATABASES,
    EPMD_PORT,
    HOST,
    RABBIT_PORT,
    REGION,
    Layout,
)
from flotte.errors import FlotteError

# API -> the name its gunicorn master is recorded under.
API_PROCESS = {
    "keystone": "keystone",
    "glance": "glance",
    "placement": "placement",
    "nova": "nova-api",
    "neutron": "neutron",
}

# Linux caps unix socket paths at 108 bytes.
MAX_SOCKET_PATH = 100


def run_tool(
    layout: Layout,
    logname: str,
    argv: Sequence[str],
    what: str,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a one-shot command, appending its output to ``logs/<logname>.log``.

    Secrets go in ``env``, never in ``argv``: the command line is logged (and readable
    in /proc while it runs)."""
    res = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    with open(layout.log(logname), "a") as log:
        log.write(f"$ {' '.join(argv)}\n{res.stdout}{res.stderr}")
    if res.returncode != 0:
        raise FlotteError(f"{what} failed: see {layout.log(logname)}")
    return res.stdout


def check_ports(layout: Layout) -> None:
    """Fail with one line if a port devcloud needs is taken by a process it did not start."""
    owners = {port: API_PROCESS[name] for name, port in API_PORTS.items()}
    owners[RABBIT_PORT] = "rabbitmq"
    for port, name in sorted(owners.items()):
        if procs.running(layout, name) is None and procs.port_open(port):
            raise FlotteError(
                f"port {port} is in use by another process (devcloud's {name} needs it)",
                hint="stop that process, or run `flotte devcloud status` to see what is up",
            )


def _mysql(layout: Layout, sql: str) -> None:
    run_tool(
        layout,
        "mariadb",
        ["mariadb", "--no-defaults", f"--socket={layout.mysql_socket}", "-uroot", "-e", sql],
        "creating devcloud's databases",
    )


def start_mariadb(layout: Layout, pw: dict[str, str]) -> None:
    if len(str(layout.mysql_socket)) > MAX_SOCKET_PATH:
        raise FlotteError(
            f"devcloud directory {layout.root} is too long for a unix socket path",
            hint="set FLOTTE_DEVCLOUD_DIR to a shorter path",
        )
    if not (layout.mysql_data / "mysql").is_dir():
        layout.mysql_data.mkdir(parents=True, exist_ok=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        run_tool(
            layout,
            "mariadb",
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={layout.mysql_data}",
                *user,
                # root without password, reachable only through the socket in our 0700 dir.
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            "mariadb-install-db",
        )
    if procs.running(layout, "mariadb") is None:
        layout.mysql_socket.unlink(missing_ok=True)
        args = render.mariadb_args(layout)
        if os.geteuid() != 0:
            args.remove("--user=root")
        procs.start(layout, "mariadb", args)
    procs.wait_until(
        lambda: layout.mysql_socket.exists() and _mysql_ping(layout),
        what="mariadb",
        timeout=60,
        layout=layout,
        process="mariadb",
    )
    stmts = [f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4" for db in DATABASES]
    stmts += [
        f"CREATE USER IF NOT EXISTS 'devcloud'@'localhost' IDENTIFIED BY '{pw['db']}'",
        f"ALTER USER 'devcloud'@'localhost' IDENTIFIED BY '{pw['db']}'",
        "GRANT ALL PRIVILEGES ON *.* TO 'devcloud'@'localhost'",
        "FLUSH PRIVILEGES",
    ]
    _mysql(layout, "; ".join(stmts))


def _mysql_ping(layout: Layout) -> bool:
    res = subprocess.run(
        ["mariadb-admin", "--no-defaults", f"--socket={layout.mysql_socket}", "-uroot", "ping"],
        capture_output=True,
        check=False,
    )
    return res.returncode == 0


def start_rabbitmq(layout: Layout) -> None:
    """Start epmd and RabbitMQ unless running; wait for the AMQP port in ``wait_rabbitmq``."""
    layout.rabbit_dir.mkdir(parents=True, exist_ok=True)
    env = render.rabbit_env(layout)
    # Our own epmd, so that `down` can stop it by PID (erl would daemonise one).
    if procs.running(layout, "epmd") is None and not procs.port_open(EPMD_PORT):
        procs.start(layout, "epmd", ["epmd", "-address", HOST, "-port", str(EPMD_PORT)], env=env)
    if procs.running(layout, "rabbitmq") is None:
        procs.start(layout, "rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], env=env)


def wait_rabbitmq(layout: Layout) -> None:
    procs.wait_until(
        lambda: procs.port_open(RABBIT_PORT),
        what="rabbitmq",
        timeout=90,
        layout=layout,
        process="rabbitmq",
    )


def _sync_keystone(layout: Layout, pw: dict[str, str]) -> None:
    ks = str(layout.bin("keystone-manage"))
    conf = render.conf_args(layout, "keystone")
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    owner = ["--keystone-user", user, "--keystone-group", group]
    run_tool(layout, "keystone-manage", [ks, *conf, "db_sync"], "keystone db_sync")
    run_tool(layout, "keystone-manage", [ks, *conf, "fernet_setup", *owner], "keystone fernet")
    run_tool(layout, "keystone-manage", [ks, *conf, "credential_setup", *owner], "keystone cred")
    url = render.url("keystone") + "/v3"
    run_tool(
        layout,
        "keystone-manage",
        [
            ks,
            *conf,
            "bootstrap",
            "--bootstrap-admin-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-region-id",
            REGION,
        ],
        "keystone bootstrap",
        env={"OS_BOOTSTRAP_PASSWORD": pw["admin"]},
    )


def _sync_nova(layout: Layout, pw: dict[str, str]) -> None:
    nm = [str(layout.bin("nova-manage")), *render.conf_args(layout, "nova")]
    run_tool(layout, "nova-manage", [*nm, "api_db", "sync"], "nova api_db sync")
    cell0 = render.db_url(layout, pw, "nova_cell0")
    run_tool(
        layout,
        "nova-manage",
        [*nm, "cell_v2", "map_cell0", "--database_connection", cell0],
        "nova map_cell0",
    )
    cells = run_tool(layout, "nova-manage", [*nm, "cell_v2", "list_cells"], "nova list_cells")
    if " cell1 " not in cells:
        run_tool(layout, "nova-manage", [*nm, "cell_v2", "create_cell", "--name", "cell1"], "cell1")
    run_tool(layout, "nova-manage", [*nm, "db", "sync"], "nova db sync")


def sync_databases(layout: Layout, pw: dict[str, str]) -> None:
    """Run every service's migrations, side by side (they touch different databases)."""
    b = layout.bin
    jobs = [
        lambda: _sync_keystone(layout, pw),
        lambda: _sync_nova(layout, pw),
        lambda: run_tool(
            layout,
            "neutron-db-manage",
            [str(b("neutron-db-manage")), *render.conf_args(layout, "neutron"), "upgrade", "heads"],
            "neutron-db-manage upgrade",
        ),
        lambda: run_tool(
            layout,
            "glance-manage",
            [str(b("glance-manage")), *render.conf_args(layout, "glance"), "db_sync"],
            "glance-manage db_sync",
        ),
        lambda: run_tool(
            layout,
            "placement-manage",
            [str(b("placement-manage")), *render.conf_args(layout, "placement"), "db", "sync"],
            "placement-manage db sync",
        ),
    ]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        for fut in futures:
            fut.result()


def start_apis(layout: Layout) -> None:
    for service in API_PORTS:
        name = API_PROCESS[service]
        if procs.running(layout, name) is None:
            procs.start(
                layout,
                name,
                render.api_args(layout, service),
                env=render.api_env(layout, service),
                cwd=layout.state_dir,
            )


def api_answers(service: str) -> bool:
    """True when the API answers HTTP (any status below 500) on its root URL."""
    return url_answers(render.url(service))


def url_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=5) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (urllib.error.URLError, OSError):
        return False


def wait_api(layout: Layout, service: str, timeout: float = 120) -> None:
    procs.wait_until(
        lambda: api_answers(service),
        what=f"{service} API",
        timeout=timeout,
        layout=layout,
        process=API_PROCESS[service],
        interval=0.5,
    )


def start_nova_daemon(layout: Layout, name: str) -> None:
    if procs.running(layout, name) is None:
        procs.start(
            layout,
            name,
            [str(layout.bin(name)), *render.conf_args(layout, "nova")],
            cwd=layout.state_dir,
        )


def discover_hosts(layout: Layout) -> None:
    nm = [str(layout.bin("nova-manage")), *render.conf_args(layout, "nova")]
    run_tool(layout, "nova-manage", [*nm, "cell_v2", "discover_hosts"], "nova discover_hosts")


def wait_service(layout: Layout, conn: Any, binary: str) -> None:
    """A Nova service reports up (the scheduler skips a compute whose report is stale)."""

    def service_up() -> bool:
        return any(s.binary == binary and s.state == "up" for s in conn.compute.services())

    procs.wait_until(service_up, what=binary, timeout=90, layout=layout, process=binary, interval=1)
