"""The ``flotte`` entry point: a click group whose sub-commands load on first use.

Sub-command modules are imported only when their command runs, so ``flotte advise``
does not pay for openstacksdk, boto3 or docker at start-up.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from flotte import logs
from flotte.errors import FlotteError

# pydantic looks for plugins (its documented entry-point group) when it first builds a
# model's validator by reading every installed distribution's metadata: 30-40 ms of
# CPU of each listing, for plugins flotte's specs do not use. Setting the variable
# (even empty) beforehand keeps pydantic's own behaviour.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# command name -> "module:attribute"; each module owns its command group.
COMMANDS: dict[str, tuple[str, str]] = {
    "machine": ("flotte.cli.machine:machine", "Docker hosts (docker-machine verbs)."),
    "template": ("flotte.cli.template:template", "Cluster templates (Magnum ClusterTemplate)."),
    "cluster": ("flotte.cli.cluster:cluster", "Container clusters: Swarm managers and workers."),
    "providers": (
        "flotte.cli.providers:providers",
        "The provider catalog: facts, prices, sources.",
    ),
    "advise": ("flotte.cli.advise:advise", "Rank offers for a cluster shape by cost."),
    "devcloud": ("flotte.cli.devcloud:devcloud", "Real OpenStack services on this machine."),
    "image": ("flotte.cli.image:image", "Cloud images (Glance): upload, list."),
    "completion": ("flotte.cli.completion:completion", "Shell completion: bash, zsh or fish."),
    "ca": ("flotte.cli.ca:ca", "The certificate authority: show, renew-client, rotate."),
    "apply": ("flotte.cli.apply:apply", "Create or converge a cluster from a spec file."),
    "watch": ("flotte.cli.health:watch", "Check auto-healing clusters and heal them, in rounds."),
    "project": ("flotte.cli.tenancy:project", "flotte serve: projects (standalone identity)."),
    "user": ("flotte.cli.tenancy:user", "flotte serve: users (standalone identity)."),
    "account": ("flotte.cli.tenancy:account", "flotte serve: per-project driver accounts."),
    "serve": ("flotte.cli.serve:serve", "Run flotte as a service (Magnum API, workers)."),
}


_state = {"debug": False}  # set by the group's callback, read when an error comes back


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                return None  # command not built yet in this version
            raise
        command: click.Command = getattr(module, attr)
        from flotte.cli.completion import attach  # names complete from the state

        return attach(cmd_name, command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists every command without importing any of them.
        rows = [(name, help_) for name, (_, help_) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="flotte")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """flotte: Docker hosts and container clusters wherever you can get machines."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _state["debug"] = debug
    # flotte's loggers only; library records are redacted (botocore logs session tokens)
    logs.setup(debug)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; a FlotteError becomes one line on stderr and a non-zero exit."""
    try:
        return cli.main(args=argv, prog_name="flotte", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as err:
        # One line, like every other error; the usage text is one --help away.
        where = err.ctx.command_path if err.ctx else "flotte"
        click.echo(f"Error: {err.format_message()} (see '{where} --help')", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except FlotteError as err:
        if _state["debug"]:
            raise
        # A driver's message may quote what it was given: secrets never reach the screen.
        click.echo(f"Error: {logs.redact(str(err))}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
