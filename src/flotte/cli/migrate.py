"""Moving in and sharing: ``flotte machine import|export|ssh-config``, ``flotte cluster
export-access|inventory``.

Thin: parse, ask for a passphrase (never on the command line), call
:class:`flotte.service.migration.Migration`, print one line per machine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flotte.cli.common import service
from flotte.errors import UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import x25519

    from flotte.service.migration import Migration, Outcome

PASSPHRASE_ENV = "FLOTTE_BUNDLE_PASSPHRASE"


def _migration() -> Migration:
    from flotte.service.migration import Migration

    return Migration(service())


def _passphrase(path: str | None, *, confirm: bool) -> str:
    """From a file (``-``: stdin), $FLOTTE_BUNDLE_PASSPHRASE, or a prompt; never an argument."""
    if path == "-":
        return sys.stdin.readline().rstrip("\n")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--passphrase-file {path}: cannot be read ({err})") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if sys.stdin.isatty():
        return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))
    raise UsageError(
        "no passphrase: give it with --passphrase-file FILE ('-' reads stdin), "
        f"${PASSPHRASE_ENV}, or run in a terminal"
    )


def _recipient(value: str) -> x25519.X25519PublicKey:
    from flotte.share import recipient_key

    path = Path(value).expanduser()
    if path.is_file():
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"--to {value}: cannot be read ({err})") from None
    return recipient_key(value)


def _write_bundle(path: str, data: bytes, force: bool) -> None:
    from flotte.config import write_secret

    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{path} already exists", hint="choose another file or pass --force")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    write_secret(target, data)  # 0600: a bundle is a key to the engines


def _print(outcomes: list[Outcome], fmt: str) -> None:
    if fmt == "json":
        rows = [{"name": o.name, "status": o.status, "detail": o.detail} for o in outcomes]
        click.echo(json.dumps(rows, indent=2))
        return
    for o in outcomes:
        click.echo(o.line())


passphrase_file = click.option(
    "--passphrase-file",
    default=None,
    metavar="FILE",
    help=f"Read the passphrase from FILE ('-': stdin); else ${PASSPHRASE_ENV} or a prompt.",
)
to_option = click.option(
    "--to",
    "to",
    default=None,
    metavar="PUBKEY",
    help="Seal for this ssh-ed25519 public key (a .pub file or the line) instead of a passphrase.",
)
out_option = click.option(
    "-o", "--output", "output", required=True, metavar="FILE", help="The bundle file (0600)."
)
force_option = click.option("--force", is_flag=True, help="Overwrite FILE.")


@click.command("import")
@click.argument("args", nargs=-1)
@click.option(
    "--from-docker-machine",
    "from_dm",
    is_flag=True,
    help="Import docker-machine's machines (ARGS: [DIR] [NAME...]).",
)
@click.option(
    "-s",
    "--storage-path",
    default=None,
    metavar="DIR",
    help="docker-machine's directory (default $MACHINE_STORAGE_PATH or ~/.docker/machine).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be imported; change nothing.")
@passphrase_file
@click.option(
    "--identity",
    default=None,
    metavar="KEY",
    help="The ssh-ed25519 private key a bundle was sealed for (default ~/.ssh/id_ed25519).",
)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def machine_import(
    args: tuple[str, ...],
    from_dm: bool,
    storage_path: str | None,
    dry_run: bool,
    passphrase_file: str | None,
    identity: str | None,
    fmt: str,
) -> None:
    """Take machines in: from docker-machine (--from-docker-machine) or a bundle FILE.

    Nothing changes on the hosts, nor in docker-machine's directory; running it again
    imports nothing twice.
    """
    if from_dm:
        names = list(args)
        store = Path(storage_path).expanduser() if storage_path else None
        if store is None and names and (Path(names[0]).expanduser() / "machines").is_dir():
            store = Path(names.pop(0)).expanduser()  # `--from-docker-machine DIR NAME...`
        outcomes = _migration().import_docker_machine(store, names, dry_run=dry_run)
        _print(outcomes, fmt)
        if not outcomes:
            click.echo("no machine found in docker-machine's directory", err=True)
        elif all(o.status == "skipped" for o in outcomes):
            sys.exit(1)
        return
    if len(args) != 1 or storage_path:
        raise UsageError(
            "give one bundle FILE, or --from-docker-machine [DIR] [NAME...]",
            hint="flotte machine import web.bundle",
        )
    _import_bundle(args[0], passphrase_file, identity, dry_run, fmt)


def _import_bundle(
    path: str, passphrase_file: str | None, identity: str | None, dry_run: bool, fmt: str
) -> None:
    from flotte.share import sealed

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"{path}: cannot be read ({err.strerror})") from None
    found = sealed.parse(data, path)
    key_type = (found.header.get("key") or {}).get("type")
    mig = _migration()
    if key_type == "x25519":
        key_path = Path(identity or "~/.ssh/id_ed25519").expanduser()
        try:
            key_data = key_path.read_bytes()
        except OSError as err:
            raise UsageError(f"--identity {key_path}: cannot be read ({err.strerror})") from None
        bundle = mig.open_bundle(data, path, identity=sealed.identity_key(key_data))
    else:
        bundle = mig.open_bundle(data, path, passphrase=_passphrase(passphrase_file, confirm=False))
    outcomes = mig.import_bundle(bundle, dry_run=dry_run)
    _print(outcomes, fmt)
    if not dry_run and fmt == "table":
        ctx = bundle.name if bundle.kind == "cluster" else outcomes[0].name
        click.echo(f"Docker context: docker --context flotte-{ctx} ps")


@click.command("export")
@click.argument("name")
@out_option
@click.option(
    "--owner",
    is_flag=True,
    help="Also give ownership (SSH key, cloud IDs, driver secrets): the receiver may rm it.",
)
@to_option
@passphrase_file
@force_option
def machine_export(
    name: str, output: str, owner: bool, to: str | None, passphrase_file: str | None, force: bool
) -> None:
    """Write an encrypted bundle that gives another computer this machine's engine."""
    from flotte.share import Access

    mig = _migration()
    mig.store.node(name)  # an unknown name is said before any passphrase is asked
    if Path(output).exists() and not force:
        raise UsageError(f"{output} already exists", hint="choose another file or pass --force")
    access = Access.OWNER if owner else Access.USE
    if to:
        data = mig.export_machine(name, access, recipient=_recipient(to))
    else:
        data = mig.export_machine(
            name, access, passphrase=_passphrase(passphrase_file, confirm=True)
        )
    _write_bundle(output, data, force)
    click.echo(f"Wrote {output} ({access.value} access to machine {name})")


@click.command("export-access")
@click.argument("name")
@out_option
@to_option
@passphrase_file
@force_option
def cluster_export_access(
    name: str, output: str, to: str | None, passphrase_file: str | None, force: bool
) -> None:
    """Write an encrypted bundle that gives another computer the cluster's engines (use only)."""
    mig = _migration()
    mig.store.cluster(name)
    if Path(output).exists() and not force:
        raise UsageError(f"{output} already exists", hint="choose another file or pass --force")
    if to:
        data = mig.export_cluster(name, recipient=_recipient(to))
    else:
        data = mig.export_cluster(name, passphrase=_passphrase(passphrase_file, confirm=True))
    _write_bundle(output, data, force)
    click.echo(f"Wrote {output} (use access to cluster {name})")


@click.command("inventory")
@click.argument("name")
@click.option("-f", "--format", "fmt", type=click.Choice(["ansible", "json"]), default="ansible")
def cluster_inventory(name: str, fmt: str) -> None:
    """An Ansible inventory of the cluster's nodes (groups per role and node group)."""
    from flotte.inventory import ansible_inventory

    mig = _migration()
    hosts = mig.cluster_hosts(name)
    click.echo(ansible_inventory(hosts, name, mig.inst.paths.known_hosts, fmt), nl=False)


@click.command("ssh-config")
@click.argument("names", nargs=-1)
@click.option("--prefix", default="", help="Put this before each Host name.")
def machine_ssh_config(names: tuple[str, ...], prefix: str) -> None:
    """Host blocks for ~/.ssh/config: `ssh NAME` reaches each machine as flotte does."""
    from flotte.inventory import ssh_config

    mig = _migration()
    hosts = mig.machine_hosts(names)
    click.echo(ssh_config(hosts, mig.inst.paths.known_hosts, prefix), nl=False)
