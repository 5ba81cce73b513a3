"""``flotte machine``: Docker hosts with docker-machine's verbs and flags."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flotte.cli.common import (
    DriverOptionsCommand,
    Progress,
    engine_flags,
    engine_from_flags,
    for_each,
    read_listing,
    run,
    service,
    split_driver_options,
)
from flotte.cli.output import format_option, render_record, render_rows
from flotte.cli.shell_env import SHELLS, default_shell, format_env, shell_hint
from flotte.errors import UsageError

if TYPE_CHECKING:
    from flotte.models import Endpoint
    from flotte.service import Service
    from flotte.state.reader import Reader
    from flotte.state.records import Node

LS_COLUMNS = ["name", "active", "driver", "state", "url", "swarm", "docker", "errors"]


@click.group()
def machine() -> None:
    """Docker hosts (docker-machine verbs)."""


@machine.command(cls=DriverOptionsCommand)
@click.argument("name")
@click.option(
    "-d",
    "--driver",
    "driver_name",
    default="local",
    show_default=True,
    help="Driver to create the machine with.",
)
@engine_flags
@click.option(
    "--engine-install-url",
    default=None,
    help="Script that installs Docker (ssh and cloud drivers).",
)
@click.option(
    "--no-provision", is_flag=True, help="Create the infrastructure only; no Docker engine set up."
)
@click.option("--no-rollback", is_flag=True, help="Keep what was made when creation fails.")
def create(name: str, driver_name: str, **kwargs: Any) -> None:
    """Create a machine: a TLS-protected Docker host."""
    no_provision = kwargs.pop("no_provision")
    rollback = not kwargs.pop("no_rollback")
    engine = engine_from_flags(kwargs)
    install_url = kwargs.pop("engine_install_url")
    options = split_driver_options(kwargs, set())
    if install_url:
        options["engine_install_url"] = install_url
    progress = Progress(f"machine {name}")
    svc = service(progress)
    spec, secrets = svc.machines.spec(name, driver_name, options, engine, no_provision=no_provision)
    with progress.live():
        node = run(svc.machines.create(spec, secrets, rollback=rollback))
    if no_provision or node.endpoint is None:
        click.echo(f"Machine {name} created without a Docker engine (--no-provision).")
        return
    click.echo(f"Machine {name} is running: {node.endpoint.host}")
    click.echo(f"Docker context: docker --context flotte-{name} ps")
    click.echo(f"To point your Docker client at it, run: eval $(flotte machine env {name})")


def _active_url() -> str:
    return os.environ.get("DOCKER_HOST", "")


def _parse_filters(filters: tuple[str, ...]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or key not in ("name", "driver", "state", "swarm", "label"):
            raise UsageError(
                f"--filter {f!r}: use name=, driver=, state=, swarm= or label=KEY=VALUE"
            )
        out.setdefault(key, set()).add(value)
    return out


@machine.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.option(
    "--filter", "filters", multiple=True, help="name=, driver=, state=, swarm=, label=K=V"
)
@click.option(
    "-t", "--timeout", default=3.0, show_default=True, help="Seconds to wait for each engine."
)
@format_option()
def ls(quiet: bool, filters: tuple[str, ...], timeout: float, fmt: str) -> None:
    """List machines (and cluster nodes, with their cluster in SWARM)."""
    wanted = _parse_filters(filters)
    # read without the ORM (state/reader.py) when it can be: the same records
    read = read_listing(lambda reader: _read(reader, quiet, timeout))
    if read is not None:
        rows, found = read
    else:  # first use, migrations, imported machines...: the service's path
        svc = service()
        rows = svc.machines.all()

        async def gather() -> Found:
            states = svc.machines.states(rows)
            if quiet:
                return list(await states), {}, {}
            versions = svc.machines.engine_versions(rows, timeout)
            errors = svc.machines.errors(rows, timeout)
            found = await asyncio.gather(states, versions, errors)
            return list(found[0]), found[1], found[2]

        found = run(gather())
    states, versions, errors = found
    out = []
    active = _active_url()
    for row, state in zip(rows, states, strict=True):
        url = row.url
        swarm = (
            f"{row.cluster} ({'manager' if row.role == 'manager' else 'worker'})"
            if row.cluster
            else ""
        )
        labels = set(row.engine.labels)
        record = {
            "name": row.name,
            "active": "*" if url and url == active else "-",
            "driver": row.driver,
            "state": str(state),
            "url": url,
            "swarm": swarm,
            "docker": versions.get(row.name, ""),
            "errors": errors.get(row.name, row.status_reason),
        }
        if _matches(record, row.cluster or "", labels, wanted):
            out.append(record)
    if quiet:
        for r in out:
            click.echo(r["name"])
        return
    render_rows(out, LS_COLUMNS, fmt)


Found = tuple[list[Any], dict[str, str], dict[str, str]]  # states, versions, errors


def _read(reader: Reader, quiet: bool, timeout: float) -> tuple[list[Node], Found] | None:
    """The nodes and what ``ls`` asks of them, or None when one is imported (its state
    may come from its own engine, which the service's path asks)."""
    from flotte.listing import is_imported

    rows = reader.nodes()
    if any(map(is_imported, rows)):
        return None
    return rows, run(_ask(reader, rows, quiet, timeout))


async def _ask(reader: Reader, rows: list[Node], quiet: bool, timeout: float) -> Found:
    """What ``ls`` asks of drivers and engines, for records read without the ORM: the
    same answers as ``Machines`` gives (``flotte/listing.py`` is the one code of both)."""
    from flotte import listing
    from flotte.config import paths
    from flotte.pki import CertificateAuthority

    where = paths()
    ca = CertificateAuthority(where.certs).ensure()
    specs = {("cluster", c.name): c.spec for c in reader.clusters()}
    specs.update({("machine", n): s for n, (s, _) in reader.machine_specs().items()})
    made = listing.RecordedDrivers(where, ca, reader.installation, specs)
    try:
        states = listing.states(rows, made.driver_of)
        if quiet:
            return list(await states), {}, {}
        found = await asyncio.gather(
            states,
            listing.engine_versions(rows, ca, timeout),
            listing.errors(rows, ca, timeout),
        )
    finally:
        made.close()
    changed = listing.changed_versions(rows, found[1])
    if changed:  # kept current as the service's path does: only then is the ORM loaded
        svc = service()
        try:
            svc.store.set_engine_versions(changed)
        finally:
            svc.close()
    return list(found[0]), found[1], found[2]


def _matches(
    record: dict[str, Any], cluster: str, labels: set[str], wanted: dict[str, set[str]]
) -> bool:
    for key, values in wanted.items():
        if key == "label":
            if not values <= labels:
                return False
        elif key == "swarm":
            if cluster not in values:
                return False
        elif key == "state":
            if record["state"].lower() not in {v.lower() for v in values}:
                return False
        elif record[key] not in values:
            return False
    return True


def _public_view(svc: Service, row: Node) -> dict[str, Any]:
    from dataclasses import asdict

    from flotte.client_tls import engine_files

    options = {} if row.cluster else svc.machines.desired(row.name).options
    # an imported machine's engine trusts its own CA: show the files that reach it
    tls = engine_files(row.endpoint.tls_dir if row.endpoint else None, svc.ca)
    return {
        "name": row.name,
        "driver": row.driver,
        "cluster": row.cluster,
        "nodegroup": None if not row.cluster else row.group,
        "role": row.role.value,
        "host": row.host,
        "status": row.status,
        "status_reason": row.status_reason,
        "options": options,  # secrets are never recorded with the machine
        "engine": row.engine.to_dict(),
        "record": asdict(row.record) if row.record else {},
        "endpoint": asdict(row.endpoint) if row.endpoint else {},
        "url": row.url,
        "engine_version": row.engine_version or None,  # as its engine last said
        "tls": dict(zip(("ca", "cert", "key"), map(str, tls), strict=True)),
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


@machine.command()
@click.argument("name")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["json", "yaml", "table"]),
    default="json",
    show_default=True,
)
def inspect(name: str, fmt: str) -> None:
    """Everything recorded about a machine (secrets left out)."""
    svc = service()
    render_record(_public_view(svc, svc.machines.get(name)), fmt)


def _endpoint(name: str) -> tuple[Service, Endpoint]:
    svc = service()
    row = svc.machines.get(name)
    if row.endpoint is None:
        raise UsageError(f"machine {name!r} has no Docker engine (status {row.status})")
    return svc, row.endpoint


@machine.command()
@click.argument("names", nargs=-1, required=True)
def ip(names: tuple[str, ...]) -> None:
    """The address of each machine."""
    svc = service()
    for name in names:
        click.echo(svc.machines.get(name).address)


@machine.command()
@click.argument("name")
def url(name: str) -> None:
    """The Docker engine URL of a machine."""
    _, endpoint = _endpoint(name)
    click.echo(endpoint.docker_url)


@machine.command()
@click.argument("name")
def status(name: str) -> None:
    """The state of a machine (Running, Stopped, ...)."""
    svc = service()
    click.echo(str(run(svc.machines.state(svc.machines.get(name)))))


def _action(action: str, names: tuple[str, ...]) -> None:
    svc = service()
    for name in names:
        svc.machines.get(name)  # every name checked before any machine changes

    for_each(names, lambda n: svc.machines.action(n, action), lambda n: f"{n}: {action} done")


@machine.command()
@click.argument("names", nargs=-1, required=True)
def start(names: tuple[str, ...]) -> None:
    """Start machines (their engines come back with certificates for their address)."""
    _action("start", names)


@machine.command()
@click.argument("names", nargs=-1, required=True)
def stop(names: tuple[str, ...]) -> None:
    """Stop machines."""
    _action("stop", names)


@machine.command()
@click.argument("names", nargs=-1, required=True)
def restart(names: tuple[str, ...]) -> None:
    """Restart machines."""
    _action("restart", names)


@machine.command()
@click.argument("names", nargs=-1, required=True)
def kill(names: tuple[str, ...]) -> None:
    """Stop machines at once, without a clean shutdown."""
    _action("kill", names)


@machine.command()
@click.argument("names", nargs=-1, required=True)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Forget the machine even if its resources cannot be removed.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--purge", is_flag=True, help="ssh driver: also uninstall what flotte installed on the host."
)
def rm(names: tuple[str, ...], force: bool, yes: bool, purge: bool) -> None:
    """Remove machines and everything flotte made for them."""
    svc = service()
    for name in names:
        svc.machines.lone(name)  # checked first: a cluster node or unknown name changes nothing
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to remove without confirmation: pass -y")
        click.confirm(f"Remove {', '.join(names)}?", abort=True)

    for_each(
        names,
        lambda n: svc.machines.remove(n, force=force, purge=purge),
        lambda n: f"Successfully removed {n}",
    )


@machine.command()
@click.argument("name", required=False)
@click.option(
    "--shell", type=click.Choice(SHELLS), default=None, help="Shell syntax (default: $SHELL)."
)
@click.option("-u", "--unset", is_flag=True, help="Print commands that unset the variables.")
def env(name: str | None, shell: str | None, unset: bool) -> None:
    """Shell commands that point the docker CLI at a machine (-u: away from it)."""
    shell = shell or default_shell()
    if unset:
        # as docker-machine's: no machine needed, so it works after the machine's rm
        from flotte.models import DOCKER_ENV

        values = dict.fromkeys(DOCKER_ENV, "")
    elif name is None:
        raise UsageError("give the machine's NAME (flotte machine ls lists them)")
    else:
        values = service().machines.env(name)
    cmd = f"flotte machine env{' -u' if unset else ''}{f' {name}' if name else ''}"
    click.echo(format_env(values, shell, unset, shell_hint(shell, cmd)))


@machine.command()
@click.argument("name")
def config(name: str) -> None:
    """docker CLI flags that reach a machine's engine."""
    svc, endpoint = _endpoint(name)
    certs = Path(endpoint.tls_dir) if endpoint.tls_dir else svc.ca.client.directory
    click.echo(
        f'--tlsverify --tlscacert="{certs / "ca.pem"}" --tlscert="{certs / "cert.pem"}" '
        f'--tlskey="{certs / "key.pem"}" -H={endpoint.docker_url}'
    )


@machine.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, command: tuple[str, ...]) -> None:
    """Open a shell on a machine, or run COMMAND there."""
    svc = service()
    args = list(command)
    if args and args[0] == "--":
        args = args[1:]
    argv = svc.machines.shell(name, args)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@machine.command("regenerate-certs")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--client-certs", is_flag=True, help="Also make a new client certificate.")
def regenerate_certs(names: tuple[str, ...], force: bool, client_certs: bool) -> None:
    """Sign new server certificates for machines (their engines restart)."""
    svc = service()
    for name in names:
        svc.machines.get(name)
    if not force:
        if not sys.stdin.isatty():
            raise UsageError("refusing to regenerate certificates without confirmation: pass -f")
        click.confirm(f"Regenerate TLS certificates of {', '.join(names)}?", abort=True)
    for i, name in enumerate(names):
        run(svc.machines.regenerate_certs(name, client_certs=client_certs and i == 0))
        click.echo(f"Regenerated certificates of {name}")


@machine.command()
def active() -> None:
    """The machine DOCKER_HOST points at."""
    svc = service()
    url = _active_url()
    for row in svc.machines.all():
        if row.url and url == row.url:
            click.echo(row.name)
            return
    raise UsageError("no active machine: DOCKER_HOST does not point at one of flotte's machines")


@machine.command()
@click.argument("name")
@click.option(
    "--name", "image_name", default=None, help="Name of the image (default: NAME-snapshot)."
)
def snapshot(name: str, image_name: str | None) -> None:
    """Save a machine's disk as an image (cloud drivers)."""
    svc = service()
    image_id = run(svc.machines.snapshot(name, image_name or f"{name}-snapshot"))
    click.echo(
        json.dumps({"machine": name, "image": image_name or f"{name}-snapshot", "id": image_id})
    )


def _register_migration() -> None:
    from flotte.cli.migrate import machine_export, machine_import, machine_ssh_config

    for command in (machine_import, machine_export, machine_ssh_config):
        machine.add_command(command)


_register_migration()
