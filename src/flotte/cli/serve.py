"""``flotte serve``: the Magnum API and its workers, in one process or many.

Out of the box one command runs everything: SQLite in the installation, the API, and a
worker in the same process. At scale, several processes share one PostgreSQL database
(``--database-url`` or ``FLOTTE_DATABASE_URL``), each with the API role, the worker
role or both (``--api``, ``--worker``), on one machine or several.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.serve_settings import ServeSettings

Role = Literal["api", "worker"]
log = logging.getLogger("flotte.serve")

ROLES: tuple[Role, ...] = ("api", "worker")
BEAT_EVERY = 5.0  # seconds between two heartbeats of this process (/v1/mservices)


@click.command("serve")
@click.option("--api", "api_role", is_flag=True, help="Run the API (default: API and worker).")
@click.option("--worker", "worker_role", is_flag=True, help="Run jobs (default: API and worker).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=9511, show_default=True, type=int, help="Port of the API.")
@click.option(
    "--database-url",
    envvar="FLOTTE_DATABASE_URL",
    help="postgresql+psycopg://USER@HOST/DB shared by every serve process (default: SQLite "
    "in FLOTTE_HOME). A password goes in ~/.pgpass or FLOTTE_DATABASE_URL, never here.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Serve HTTPS with this cert.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="The TLS certificate's key.")
@click.option(
    "--cors-origin", "cors_origins", multiple=True, help="Allow this web origin (CORS is off)."
)
@click.option(
    "--identity",
    type=click.Choice(["standalone", "keystone"]),
    default="standalone",
    show_default=True,
    help="Own projects and users, or tokens of a Keystone.",
)
@click.option("--keystone-url", help="Keystone v3 URL (--identity keystone).")
@click.option("--public-url", help="URL clients reach this API at (standalone catalog).")
@click.option(
    "--default-driver", default="local", show_default=True, help="Driver of a template with none."
)
@click.option("--secret-key-file", type=click.Path(dir_okay=False), help="Shared secret key.")
@click.option("--name", "process_name", help="This process in /v1/mservices (default host:pid).")
@click.option("--concurrency", default=8, show_default=True, type=int, help="Jobs run at once.")
@click.option(
    "--heal-interval",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds between a worker's auto-healing rounds (0: no auto-healing).",
)
@click.option("--home", type=click.Path(file_okay=False), help="FLOTTE_HOME of the installation.")
@click.pass_context
def serve(ctx: click.Context, /, **opts: Any) -> None:
    """Run flotte as a service: OpenStack Magnum's API v1 and the workers behind it."""
    url = opts["database_url"]
    if url and ctx.get_parameter_source("database_url") == click.core.ParameterSource.COMMANDLINE:
        _no_password_on_the_command_line(url)
    settings = settings_from(opts)
    if opts["concurrency"] < 1:
        raise UsageError(f"--concurrency must be at least 1 (got {opts['concurrency']})")
    if opts["heal_interval"]:
        from flotte.service.health import check_interval

        check_interval(opts["heal_interval"], flag="--heal-interval")
    _logging(ctx.obj.get("debug", False) if ctx.obj else False)
    asyncio.run(run(settings, concurrency=opts["concurrency"], heal_interval=opts["heal_interval"]))


def settings_from(opts: dict[str, Any]) -> ServeSettings:
    """ServeSettings from the flags; bad input is one UsageError line."""
    from pydantic import ValidationError

    from flotte.serve_settings import ServeSettings

    roles: tuple[Role, ...] = tuple(r for r in ROLES if opts[f"{r}_role"]) or ROLES
    for flag in ("tls_cert", "tls_key", "secret_key_file"):
        value = opts.get(flag)
        if value and flag != "secret_key_file" and not Path(value).is_file():
            raise UsageError(f"--{flag.replace('_', '-')} {value}: no such file")
    try:
        return ServeSettings(
            home=Path(opts["home"]) if opts.get("home") else None,
            database_url=opts.get("database_url") or None,
            identity=opts["identity"],
            keystone_url=opts.get("keystone_url"),
            public_url=opts.get("public_url"),
            default_driver=opts["default_driver"],
            roles=roles,
            host=opts["host"],
            port=opts["port"],
            tls_cert=Path(opts["tls_cert"]) if opts.get("tls_cert") else None,
            tls_key=Path(opts["tls_key"]) if opts.get("tls_key") else None,
            cors_origins=tuple(opts.get("cors_origins") or ()),
            secret_key_file=Path(opts["secret_key_file"]) if opts.get("secret_key_file") else None,
            process_name=opts.get("process_name"),
        )
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        message = str(first.get("msg", err)).removeprefix("Value error, ")
        raise UsageError(f"flotte serve: {f'{where}: ' if where else ''}{message}") from None


def _no_password_on_the_command_line(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(
            f"--database-url {url!r} is not a database URL",
            hint="e.g. postgresql+psycopg://flotte@db.lab/flotte",
        ) from None
    if parsed.password:
        raise UsageError(
            "--database-url carries a password, which a command line shows to every user "
            "of this machine",
            hint="put it in ~/.pgpass (or PGPASSFILE), or pass the URL in FLOTTE_DATABASE_URL",
        )


def _logging(debug: bool) -> None:
    """A service says what it does: flotte's INFO lines (jobs, the access log) with their
    time, through the CLI's redacting handler (which keeps them at WARNING otherwise)."""
    from flotte import logs

    handler = logs.setup(debug)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger("flotte").setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("procrastinate", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


async def run(settings: ServeSettings, *, concurrency: int, heal_interval: float = 0.0) -> None:
    """One serve process until SIGTERM or SIGINT: its roles, its heartbeat, then a clean stop."""
    from flotte.jobs import open_jobs
    from flotte.service import Service
    from flotte.service.requests import attach

    if settings.database_url:
        # Every Service of this process (and the use cases it runs) opens this database.
        os.environ["FLOTTE_DATABASE_URL"] = settings.database_url
    svc = Service(settings.home)
    attach(svc, settings)
    roles: list[str] = list(settings.roles)
    jobs = open_jobs(svc, worker="worker" in roles, concurrency=concurrency)
    stop = asyncio.Event()
    server = _api_server(settings, svc, jobs) if "api" in roles else None

    def stopping() -> None:
        stop.set()
        if server is not None:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    await jobs.start()
    beat = asyncio.create_task(_beat(svc, settings, roles), name="flotte serve heartbeat")
    healer = None
    if "worker" in roles and heal_interval:
        from flotte.service import health

        # every labelled cluster checked and healed; a round is never cut short by a stop
        healer = asyncio.create_task(
            health.watch(svc, interval=heal_interval, stop=stop), name="flotte serve healer"
        )
    log.info(
        "flotte serve: %s on %s%s",
        " and ".join(roles),
        _where(settings.database_url, svc),
        f", API at {settings.scheme}://{settings.host}:{settings.port}" if server else "",
    )
    try:
        if server is None:
            await stop.wait()
        else:
            try:
                await server.serve()
            except SystemExit:  # uvicorn's answer to a port it cannot bind
                raise UsageError(
                    f"the API cannot listen on {settings.host}:{settings.port}",
                    hint="is another process using that port? choose another with --port",
                ) from None
    finally:
        stop.set()
        beat.cancel()
        await asyncio.gather(beat, *([healer] if healer else []), return_exceptions=True)
        await jobs.stop()
        svc.close()


def _api_server(settings: Any, svc: Any, jobs: Any) -> Any:
    import uvicorn

    from flotte import metrics
    from flotte.api.app import create_app

    app = create_app(settings, service=svc, jobs=jobs)
    metrics.install(app, svc.store)

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # flotte serve handles SIGTERM/SIGINT itself: it stops its worker too, and
            # does not re-raise the signal (uvicorn would) before cleaning up.
            yield

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        access_log=False,  # the API logs each request itself, with its request id
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    return Server(config)


async def _beat(svc: Any, settings: Any, roles: list[str]) -> None:
    from flotte.state.tenancy import TenancyStore

    tenancy = TenancyStore(svc.store)
    host, pid = socket.gethostname(), os.getpid()
    name = settings.process_name or f"{host}:{pid}"
    while True:
        try:
            await asyncio.to_thread(tenancy.beat, name, host, pid, ",".join(roles))
        except Exception as err:  # the database away for a moment: beat again later
            log.warning("heartbeat not recorded: %s", err)
        await asyncio.sleep(BEAT_EVERY)


def _where(url: str | None, svc: Any) -> str:
    if not url:
        return f"SQLite {svc.paths.database}"
    from sqlalchemy.engine import make_url

    return f"{make_url(url).render_as_string(hide_password=True)}"
