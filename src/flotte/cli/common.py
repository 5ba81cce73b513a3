"""Pieces shared by the machine, cluster and template commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from flotte import logs

if TYPE_CHECKING:  # the executor imports asyncio: listings that do not run it skip both
    from flotte.engine.executor import Step
    from flotte.models import EngineOptions
    from flotte.service import Service
    from flotte.state.reader import Reader

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class DriverOptionsCommand(click.Command):
    """A command that also takes every driver's flags, added only when it runs.

    Listing driver options imports each driver's module; doing it in ``get_params``
    keeps ``flotte machine ls`` from paying for openstacksdk and boto3.
    """

    _driver_params: list[click.Parameter] | None = None

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self._driver_params is None:
            self._driver_params = driver_params()
        return [*super().get_params(ctx)[:-1], *self._driver_params, super().get_params(ctx)[-1]]


FILE_SUFFIX = "__file"  # the parameter that reads a secret option from a file


def driver_params() -> list[click.Parameter]:
    """Every driver's flags; a secret one also as ``--NAME-file PATH`` (``-``: stdin)."""
    from flotte import drivers
    from flotte.errors import UsageError

    params: list[click.Parameter] = []
    seen: set[str] = set()
    for name in drivers.names():
        try:
            hidden, table = drivers.hidden(name), drivers.options(name)
        except UsageError:
            continue  # a driver whose module is not in this build
        names = {o.name for o in table}
        for opt in table:
            if opt.key in seen:
                continue
            seen.add(opt.key)
            decls = [f"--{opt.name}", *(f"--{a}" for a in opt.aliases), opt.key]
            if opt.is_flag:
                params.append(
                    click.Option(
                        decls,
                        is_flag=True,
                        default=bool(opt.default),
                        help=opt.help,
                        envvar=opt.envvar,
                        hidden=hidden,
                    )
                )
                continue
            params.append(
                click.Option(
                    decls,
                    type=opt.type,
                    default=opt.default,
                    multiple=opt.multiple,
                    help=f"[{name}] {opt.help}",
                    envvar=opt.envvar,
                    show_envvar=bool(opt.envvar),
                    hidden=hidden,
                )
            )
            if opt.secret and f"{opt.name}-file" not in names:
                params.append(
                    click.Option(
                        [f"--{opt.name}-file", opt.key + FILE_SUFFIX],
                        default=None,
                        help=f"[{name}] read {opt.name} from this file ('-': standard input)",
                        hidden=hidden,
                    )
                )
    return params


def _read_secret(path: str, flag: str) -> str:
    from flotte.errors import UsageError

    if path == "-":
        if sys.stdin.isatty():
            import getpass

            return getpass.getpass(f"{flag}: ")
        return sys.stdin.readline().rstrip("\n")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--{flag}-file {path}: cannot be read ({err})") from None


def split_driver_options(kwargs: dict[str, Any], own: set[str]) -> dict[str, Any]:
    """Remove and return the driver flags from a command's keyword arguments.

    ``--X-file`` values are read here, so a secret never has to be on a command line.
    """
    found = {k: kwargs.pop(k) for k in list(kwargs) if k not in own}
    for key in [k for k in found if k.endswith(FILE_SUFFIX)]:
        path = found.pop(key)
        if path:
            base = key.removesuffix(FILE_SUFFIX)
            found[base] = _read_secret(path, base.replace("_", "-"))
    return found


def given_flags(flags: dict[str, Any], *, from_env: bool = True) -> dict[str, Any]:
    """Only the flags the user gave (command line, and environment unless ``from_env`` is
    false), not click's defaults.

    A node group refines its cluster: a default such as ``--openstack-ssh-user root``
    must not override what the cluster was made with. A stored account takes the command
    line only: whatever OS_* variables the operator's shell holds are not recorded.
    """
    ctx = click.get_current_context()
    given = [click.core.ParameterSource.COMMANDLINE]
    if from_env:
        given.append(click.core.ParameterSource.ENVIRONMENT)
    out = {}
    for key, value in flags.items():
        # a --X-file flag was read into X: it counts as given when X-file was
        sources = (ctx.get_parameter_source(key), ctx.get_parameter_source(key + FILE_SUFFIX))
        if any(source in given for source in sources):
            out[key] = value
    return out


def engine_flags(f: F) -> F:
    """docker-machine's ``--engine-*`` flags and ``--tls-san``."""
    for decl, help_ in reversed(
        [
            ("--engine-opt", "dockerd flag as KEY=VALUE (repeatable)"),
            ("--engine-label", "engine label KEY=VALUE (repeatable)"),
            ("--engine-insecure-registry", "registry to reach without TLS (repeatable)"),
            ("--engine-registry-mirror", "registry mirror URL (repeatable)"),
            ("--engine-env", "environment variable KEY=VALUE for dockerd (repeatable)"),
            ("--tls-san", "extra name or address in the engine's certificate (repeatable)"),
        ]
    ):
        f = click.option(decl, multiple=True, help=help_)(f)
    f = click.option("--engine-storage-driver", default=None, help="dockerd storage driver")(f)
    f = click.option(
        "--insecure-i-know",
        "insecure_i_know",
        is_flag=True,
        help="Let --engine-opt change dockerd's TLS or listening settings (tlsverify, host).",
    )(f)
    return f


def engine_from_flags(kwargs: dict[str, Any]) -> EngineOptions:
    from flotte.models import EngineOptions

    return EngineOptions(
        opts=tuple(kwargs.pop("engine_opt", ())),
        labels=tuple(kwargs.pop("engine_label", ())),
        insecure_registries=tuple(kwargs.pop("engine_insecure_registry", ())),
        registry_mirrors=tuple(kwargs.pop("engine_registry_mirror", ())),
        env=tuple(kwargs.pop("engine_env", ())),
        storage_driver=kwargs.pop("engine_storage_driver", None),
        tls_sans=tuple(kwargs.pop("tls_san", ())),
        insecure=bool(kwargs.pop("insecure_i_know", False)),
    )


def parse_labels(values: tuple[str, ...] | str | None) -> dict[str, str]:
    """Magnum's ``--labels k=v,k2=v2`` (repeatable)."""
    from flotte.errors import UsageError

    out: dict[str, str] = {}
    items = [values] if isinstance(values, str) else list(values or ())
    for item in items:
        for pair in item.split(","):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"label {pair!r} is not KEY=VALUE")
            out[key.strip()] = value.strip()
    return out


class Progress:
    """One line per node and phase: a live table on a terminal, plain lines otherwise."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: dict[str, list[Any]] = {}
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._live: Any = None

    def __call__(self, step: Step, phase: str, detail: str = "") -> None:
        label = step.label or step.name
        if label == "-":
            return  # bookkeeping steps that do nothing worth showing
        who, _, what = label.partition(" ")
        now = time.monotonic()
        row = self.rows.setdefault(who, [what, "", now, ""])
        if phase.endswith("start"):
            row[:] = [what, "working", now, ""]
        else:
            row[0], row[1], row[3] = what, phase, detail
            if not self.tty and phase in ("done", "failed", "skipped", "undone"):
                extra = f": {detail}" if detail else ""
                click.echo(
                    f"  {who:<28} {what:<12} {phase:<8} {now - row[2]:5.1f}s{extra}", err=True
                )
        if self._live is not None:
            self._live.update(self._table())

    def note(self, who: str, what: str) -> None:
        """A driver's word on what a node is doing inside a long step (install, wait...)."""
        row = self.rows.get(who)
        if row is not None:
            row[3] = what
            if self._live is not None:
                self._live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, title=self.title, title_justify="left", header_style="bold")
        for col in ("NODE", "PHASE", "STATUS", "TIME"):
            table.add_column(col)
        now = time.monotonic()
        for who, (what, status, since, detail) in self.rows.items():
            style = {"failed": "red", "done": "green", "skipped": "yellow"}.get(status, "")
            text = f"{status}{': ' + detail if detail else ''}"
            table.add_row(
                who, what, f"[{style}]{text}[/]" if style else text, f"{now - since:.1f}s"
            )
        return table

    @contextmanager
    def live(self) -> Iterator[Progress]:
        if not self.tty:
            yield self
            return
        from rich.console import Console
        from rich.live import Live

        with Live(self._table(), console=Console(stderr=True), refresh_per_second=8) as live:
            self._live = live
            try:
                yield self
            finally:
                live.update(self._table())
                self._live = None


def service(progress: Progress | None = None, **kwargs: Any) -> Service:
    from flotte.service import Service

    return Service(events=progress, **kwargs)


def read_listing(read: Callable[[Reader], T]) -> T | None:
    """``read`` on the state read without the ORM when it exists at this flotte's
    schema (``state/reader.py``); None: read it through ``service()`` instead (first
    use, migrations, PostgreSQL, a file sqlite3 could not read: the store says why)."""
    from flotte.config import paths
    from flotte.state.reader import Unreadable, open_reader

    reader = open_reader(paths().database)
    if reader is None:
        return None
    try:
        return read(reader)
    except Unreadable:
        return None
    finally:
        reader.close()


def run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def for_each(
    names: tuple[str, ...] | list[str],
    action: Callable[[str], Awaitable[Any]],
    done: Callable[[str], str],
    progress: Progress | None = None,
) -> None:
    """Run ``action`` on every name at once; report each; exit 1 if any failed.

    One failing machine or cluster never hides what happened to the others.
    """
    import asyncio

    async def all_of() -> list[Any]:
        return list(await asyncio.gather(*(action(n) for n in names), return_exceptions=True))

    if progress is not None:
        with progress.live():
            results = run(all_of())
    else:
        results = run(all_of())
    failures = 0
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failures += 1
            click.echo(f"Error: {name}: {logs.redact(str(result))}", err=True)
        else:
            click.echo(done(name))
    if failures:
        sys.exit(1)


def wait_option(f: F) -> F:
    """``--wait SECONDS``: how long to wait for a lock another command holds."""
    return click.option(
        "--wait",
        "lock_wait",
        type=float,
        default=0.0,
        help="Seconds to wait if another flotte command is working on the same object.",
    )(f)
