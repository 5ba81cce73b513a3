"""Inventories of flotte's nodes for other tools: Ansible, and OpenSSH's ``~/.ssh/config``.

Pure renderers: a list of :class:`InventoryHost` in, text out. SSH options match what
``flotte machine ssh`` does (the node's key with ``IdentitiesOnly``, flotte's own
known_hosts with trust on first use), so Ansible and ``ssh NAME`` reach the nodes the
way flotte does.

The Ansible inventory is in the YAML inventory format (``-f ansible``) or the same
structure as JSON (``-f json``), both read by Ansible's ``yaml`` inventory plugin:
the cluster's group has one child group per role (``managers``, ``workers``) and one
per node group (``nodegroup_<name>``); every host carries ``ansible_host``,
``ansible_user``, ``ansible_port``, its key and ``docker_host``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotte.models import Endpoint

ROLE_GROUPS = {"manager": "managers", "worker": "workers", "machine": "machines"}


@dataclass(frozen=True)
class InventoryHost:
    """One node as other tools reach it."""

    name: str
    address: str
    user: str = "root"
    port: int = 22
    key: str | None = None
    role: str = "machine"
    group: str = "default"
    docker_url: str = ""

    @classmethod
    def of(
        cls, name: str, endpoint: Endpoint, role: str = "machine", group: str = "default"
    ) -> InventoryHost:
        return cls(
            name=name,
            address=endpoint.host,
            user=endpoint.ssh_user,
            port=endpoint.ssh_port,
            key=endpoint.ssh_key,
            role=role,
            group=group,
            docker_url=endpoint.docker_url,
        )


def group_name(text: str) -> str:
    """Ansible group names are identifiers: ``web-prod`` becomes ``web_prod``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return f"_{name}" if not name or name[0].isdigit() else name


def _ssh_args(known_hosts: Path | None) -> str:
    args = ["-o IdentitiesOnly=yes", "-o StrictHostKeyChecking=accept-new"]
    if known_hosts is not None:
        args.append(f"-o UserKnownHostsFile={known_hosts}")
    return " ".join(args)


def _hostvars(host: InventoryHost) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_user": host.user,
        "ansible_port": host.port,
    }
    if host.key:
        out["ansible_ssh_private_key_file"] = host.key
    if host.user != "root":
        out["ansible_become"] = True  # flotte's SSH users have passwordless sudo
    out["flotte_role"] = host.role
    out["flotte_nodegroup"] = host.group
    if host.docker_url:
        out["docker_host"] = host.docker_url
    return out


def inventory(
    hosts: Sequence[InventoryHost], cluster: str | None = None, known_hosts: Path | None = None
) -> dict[str, Any]:
    """The inventory as data: ``all`` holds every host's variables, groups list names."""
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for group in (ROLE_GROUPS.get(host.role, group_name(host.role)), f"nodegroup_{host.group}"):
            groups.setdefault(group_name(group), []).append(host.name)
    children = {g: {"hosts": {n: None for n in names}} for g, names in sorted(groups.items())}
    top: dict[str, Any] = {group_name(cluster): {"children": children}} if cluster else children
    return {
        "all": {
            "vars": {"ansible_ssh_common_args": _ssh_args(known_hosts)},
            "hosts": {h.name: _hostvars(h) for h in hosts},
            "children": top,
        }
    }


def ansible_inventory(
    hosts: Sequence[InventoryHost],
    cluster: str | None = None,
    known_hosts: Path | None = None,
    fmt: str = "ansible",
) -> str:
    """``fmt`` "ansible": a YAML inventory file; "json": the same structure as JSON."""
    data = inventory(hosts, cluster, known_hosts)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "ansible":
        raise ValueError(f"inventory format {fmt!r}")
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _quote(value: str) -> str:
    """ssh_config values with spaces are double-quoted."""
    return f'"{value}"' if any(c.isspace() for c in value) else value


def ssh_config(
    hosts: Sequence[InventoryHost], known_hosts: Path | None = None, prefix: str = ""
) -> str:
    """``Host`` blocks for ``~/.ssh/config``: ``ssh PREFIXNAME`` reaches the node."""
    blocks = []
    for host in hosts:
        lines = [
            f"Host {prefix}{host.name}",
            f"  HostName {host.address}",
            f"  User {host.user}",
            f"  Port {host.port}",
        ]
        if host.key:
            lines += [f"  IdentityFile {_quote(host.key)}", "  IdentitiesOnly yes"]
        if known_hosts is not None:
            lines.append(f"  UserKnownHostsFile {_quote(str(known_hosts))}")
        lines.append("  StrictHostKeyChecking accept-new")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
