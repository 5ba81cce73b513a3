"""A node group keeps only the driver flags the user gave, not click's defaults.

Found on devcloud: ``nodegroup create --openstack-flavor-name bm.small`` carried the
default ``--openstack-ssh-user root`` over the cluster's ``debian``, and the group's node
refused root's login.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from flotte.cli.common import given_flags


@click.command()
@click.option("--openstack-ssh-user", default="root", envvar="OS_SSH_USER")
@click.option("--openstack-flavor-name", default=None)
@click.option("--openstack-ssh-port", type=int, default=22)
@click.option("--openstack-password", default=None)
@click.option("--openstack-password--file", "openstack_password__file", default=None)
@click.option("--command-line-only", is_flag=True)
def command(command_line_only: bool, **kwargs: Any) -> None:
    kwargs.pop("openstack_password__file")
    click.echo(sorted(given_flags(kwargs, from_env=not command_line_only).items()))


def test_defaults_are_left_out_given_ones_kept(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(command, ["--openstack-flavor-name", "bm.small"], env={}).output
    assert out.strip() == "[('openstack_flavor_name', 'bm.small')]"
    out = runner.invoke(command, ["--openstack-ssh-port", "22"], env={"OS_SSH_USER": "debian"})
    assert out.output.strip() == "[('openstack_ssh_port', 22), ('openstack_ssh_user', 'debian')]"
    # a stored account takes the command line only, never the shell's OS_* variables
    out = runner.invoke(command, ["--command-line-only"], env={"OS_SSH_USER": "debian"})
    assert out.output.strip() == "[]"
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    out = runner.invoke(command, ["--openstack-password--file", str(secret)], env={})
    assert out.output.strip() == "[('openstack_password', None)]"
