"""``flotte completion bash|zsh|fish``: the shell script, and names completed from the state.

The script is click's own (it calls ``flotte`` back with ``_FLOTTE_COMPLETE`` set).
Which arguments complete which names is a rule, not a decoration on each command:
in the ``machine`` group an argument called ``name``/``names`` completes machine
names, in ``cluster`` cluster names, in ``template`` template names (``create``
excepted: its name is a new one), and ``--driver``/``--template`` options complete
drivers and templates. ``attach`` applies the rule when the lazy group loads a
command group, so new commands complete without anyone remembering to say so.

Names come from :func:`state_names`, the one place completion reads the state.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_FLOTTE_COMPLETE"
NEW_NAMES = {"create", "import"}  # commands whose name argument is a name to be made


def state_names(kind: str) -> list[str]:
    """Names of the installation's machines, clusters or templates; [] if there is no state.

    Completion never creates anything: without a database yet there is nothing to
    complete. Any error reading it completes nothing rather than printing a trace
    into the user's prompt.
    """
    from flotte.config import paths

    url = os.environ.get("FLOTTE_DATABASE_URL")
    database = paths().database
    if not url and not database.exists():
        return []
    try:
        from flotte.state.store import Store

        store = Store(url) if url else Store.at(database)
    except Exception:
        return []
    try:
        rows: list[str]
        if kind == "machine":
            rows = [m.name for m in store.nodes()]
        elif kind == "cluster":
            rows = [c.name for c in store.clusters()]
        else:
            rows = [t.name for t in store.templates()]
        return rows
    except Exception:
        return []
    finally:
        store.close()


def driver_names() -> list[str]:
    from flotte import drivers

    return drivers.names()


class Names(click.types.StringParamType):
    """Text, completed from a list of names (converts exactly like click's STRING)."""

    def __init__(self, source: Callable[[], list[str]]) -> None:
        self.source = source

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return [CompletionItem(n) for n in self.source() if n.startswith(incomplete)]


def _names(kind: str) -> Names:
    return Names(lambda: state_names(kind))


# group -> what its name/names arguments complete
GROUP_NAMES = {"machine": "machine", "cluster": "cluster", "template": "template"}
OPTION_SOURCES = {"driver": driver_names, "driver_name": driver_names}


def _complete_param(group: str, command: str, param: click.Parameter) -> None:
    if not isinstance(param.type, click.types.StringParamType) or isinstance(param.type, Names):
        return
    name = param.name or ""
    if isinstance(param, click.Argument) and name in ("name", "names"):
        if command not in NEW_NAMES and group in GROUP_NAMES:
            param.type = _names(GROUP_NAMES[group])
    elif isinstance(param, click.Option):
        if name == "template":
            param.type = _names("template")
        elif name in OPTION_SOURCES:
            param.type = Names(OPTION_SOURCES[name])


def attach(group: str, command: click.Command) -> click.Command:
    """Give ``command`` (a top-level group) the completion rules; returns it."""
    commands = command.commands if isinstance(command, click.Group) else {group: command}
    for name, sub in commands.items():
        for param in sub.params:
            _complete_param(group, name, param)
    return command


@click.command()
@click.argument("shell", type=click.Choice(SHELLS), required=False)
def completion(shell: str | None) -> None:
    """Print the completion script for SHELL (default: $SHELL).

    \b
    bash:  eval "$(flotte completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(flotte completion zsh)"    (in ~/.zshrc)
    fish:  flotte completion fish > ~/.config/fish/completions/flotte.fish
    """
    if shell is None:
        shell = os.path.basename(os.environ.get("SHELL", ""))
        if shell not in SHELLS:
            raise click.UsageError("give the shell: bash, zsh or fish")
    cls = get_completion_class(shell)
    assert cls is not None
    root = click.get_current_context().find_root().command
    with contextlib.suppress(BrokenPipeError):
        click.echo(cls(root, {}, "flotte", COMPLETE_VAR).source())
