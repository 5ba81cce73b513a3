"""``flotte project|user|account``: who may use flotte serve, and with which credentials.

Projects and users are flotte serve's own in standalone mode (Keystone keeps them in
Keystone mode). An account is a project's credentials and defaults for one driver,
sealed with the serve key: ``flotte account add --project P --driver openstack
--openstack-cloud NAME`` reads that clouds.yaml entry once, so the server needs no
clouds.yaml; secrets come from ``--X-file PATH`` (``-``: standard input), never from a
command line, and never from the caller's environment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from flotte.cli.common import (
    DriverOptionsCommand,
    given_flags,
    service,
    split_driver_options,
)
from flotte.cli.output import format_option, render_record, render_rows
from flotte.errors import UsageError


def _key_file(f: Any) -> Any:
    return click.option(
        "--secret-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="FLOTTE_SECRET_KEY_FILE",
        default=None,
        help="The serve key (default: <flotte data>/secrets/serve.key), as flotte serve reads it.",
    )(f)


def _serving(key_file: Path | None) -> Any:
    from flotte.serve_settings import ServeSettings
    from flotte.service.requests import attach

    svc = service()
    return attach(svc, ServeSettings(home=svc.paths.data, secret_key_file=key_file))


def _standalone(key_file: Path | None) -> Any:
    from flotte.identity.standalone import Standalone

    serving = _serving(key_file)
    return Standalone(serving.tenancy, serving.vault)


# -- projects ---------------------------------------------------------------------------
@click.group()
def project() -> None:
    """Projects of flotte serve's standalone identity."""


@project.command("create")
@click.argument("name")
@_key_file
@format_option()
def project_create(name: str, secret_key_file: Path | None, fmt: str) -> None:
    """Create a project."""
    record = _standalone(secret_key_file).create_project(name)
    render_record({"id": record.id, "name": record.name}, fmt)


@project.command("list")
@_key_file
@format_option()
def project_list(secret_key_file: Path | None, fmt: str) -> None:
    """List the projects."""
    serving = _serving(secret_key_file)
    rows = [
        {"id": p.id, "name": p.name, "created_at": p.created_at} for p in serving.tenancy.projects()
    ]
    render_rows(rows, ["id", "name", "created_at"], fmt)


@project.command("delete")
@click.argument("names", nargs=-1, required=True)
@_key_file
def project_delete(names: tuple[str, ...], secret_key_file: Path | None) -> None:
    """Delete projects (with their users, accounts and quotas; not while they own clusters)."""
    identity = _standalone(secret_key_file)
    for name in names:
        identity.tenancy.project(name)
    for name in names:
        record = identity.delete_project(name)
        click.echo(f"Deleted project {record.name}")


# -- users --------------------------------------------------------------------------------
@click.group()
def user() -> None:
    """Users of flotte serve's standalone identity."""


def _password(stdin: bool) -> str:
    if stdin or not sys.stdin.isatty():
        if not stdin:
            raise UsageError("give --password-stdin to read the password from standard input")
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(value)


@user.command("create")
@click.argument("name")
@click.option("--project", "project_name", required=True, help="The user's project.")
@click.option("--admin", is_flag=True, help="Give the admin role (sees every project).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@_key_file
@format_option()
def user_create(
    name: str,
    project_name: str,
    admin: bool,
    password_stdin: bool,
    secret_key_file: Path | None,
    fmt: str,
) -> None:
    """Create a user in a project (the password is never an argument)."""
    identity = _standalone(secret_key_file)
    identity.tenancy.project(project_name)  # an unknown project before the password prompt
    record = identity.create_user(name, project_name, _password(password_stdin), admin=admin)
    render_record(
        {"id": record.id, "name": record.name, "project": project_name, "admin": admin}, fmt
    )


@user.command("list")
@click.option("--project", "project_name", default=None, help="Only this project's users.")
@_key_file
@format_option()
def user_list(project_name: str | None, secret_key_file: Path | None, fmt: str) -> None:
    """List the users (never their password hashes)."""
    serving = _serving(secret_key_file)
    tenancy = serving.tenancy
    scope = tenancy.project(project_name).id if project_name else None
    names = {p.id: p.name for p in tenancy.projects()}
    rows = [
        {"id": u.id, "name": u.name, "project": names.get(u.project, u.project), "admin": u.admin}
        for u in tenancy.users(scope)
    ]
    render_rows(rows, ["id", "name", "project", "admin"], fmt)


@user.command("delete")
@click.argument("names", nargs=-1, required=True)
@_key_file
def user_delete(names: tuple[str, ...], secret_key_file: Path | None) -> None:
    """Delete users (their tokens stop working at once)."""
    identity = _standalone(secret_key_file)
    for name in names:
        record = identity.delete_user(name)
        click.echo(f"Deleted user {record.name}")


# -- accounts -------------------------------------------------------------------------------
@click.group()
def account() -> None:
    """Per-project driver accounts of flotte serve (sealed credentials and defaults)."""


class AccountCommand(DriverOptionsCommand):
    """Every driver's flags, without their environment variables: an account holds what
    its command line and files say, never what the admin's shell happens to export."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, click.Option) and p.name not in ("secret_key_file",):
                p.envvar = None
        return params


def _project_key(tenancy: Any, given: str) -> str:
    """A standalone project's id; else the Keystone project id or name as given."""
    found = tenancy.find_project(given)
    return str(found.id) if found is not None else given


@account.command("add", cls=AccountCommand)
@click.option("--project", "project_name", required=True, help="Project (name or id).")
@click.option("--driver", "driver_name", required=True, help="Driver: openstack, ec2, ssh...")
@click.option(
    "--clouds-yaml",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="clouds.yaml to read --openstack-cloud from (default: openstacksdk's search path).",
)
@_key_file
@format_option()
def account_add(
    project_name: str,
    driver_name: str,
    clouds_yaml: Path | None,
    secret_key_file: Path | None,
    fmt: str,
    **kwargs: Any,
) -> None:
    """Record (or replace) a project's account for a driver."""
    from flotte.identity.accounts import openstack_cloud_options
    from flotte.service import options as opts

    given = given_flags(split_driver_options(kwargs, set()), from_env=False)
    flags = opts.only([driver_name], given)
    cloud = flags.pop("openstack_cloud", None) if driver_name == "openstack" else None
    if cloud:
        flags = {**openstack_cloud_options(str(cloud), clouds_yaml), **flags}
    serving = _serving(secret_key_file)
    key = _project_key(serving.tenancy, project_name)
    record = serving.accounts.add(key, driver_name, flags)
    render_record(
        {"project": project_name, "driver": record.driver, "options": list(record.keys)}, fmt
    )


@account.command("list")
@click.option("--project", "project_name", default=None, help="Only this project's accounts.")
@_key_file
@format_option()
def account_list(project_name: str | None, secret_key_file: Path | None, fmt: str) -> None:
    """List accounts: projects, drivers and option names (never their values)."""
    serving = _serving(secret_key_file)
    tenancy = serving.tenancy
    names = {p.id: p.name for p in tenancy.projects()}
    scope = _project_key(tenancy, project_name) if project_name else None
    rows = [
        {
            "project": names.get(a.project, a.project),
            "driver": a.driver,
            "options": list(a.keys),
            "updated_at": a.updated_at,
        }
        for a in serving.accounts.all(scope)
    ]
    render_rows(rows, ["project", "driver", "options", "updated_at"], fmt)


@account.command("remove")
@click.option("--project", "project_name", required=True, help="Project (name or id).")
@click.option("--driver", "driver_name", required=True)
@_key_file
def account_remove(project_name: str, driver_name: str, secret_key_file: Path | None) -> None:
    """Remove a project's account for a driver."""
    serving = _serving(secret_key_file)
    serving.accounts.remove(_project_key(serving.tenancy, project_name), driver_name)
    click.echo(f"Removed the {driver_name} account of project {project_name}")
