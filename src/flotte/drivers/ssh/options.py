"""Flags of the ssh driver, and hosts written ``[user@]host[:port]``.

Hosts are written that way everywhere (``--ssh-host``, ``--hosts``, inventory files); an
inventory line may add ``key=PATH``, ``user=`` and ``port=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flotte.drivers.base import DriverOption
from flotte.errors import UsageError
from flotte.provision import distros

OPTIONS: tuple[DriverOption, ...] = (
    DriverOption(
        "ssh-host",
        "Existing host to use: [user@]host[:port]",
        envvar="FLOTTE_SSH_HOST",
        aliases=("generic-ip-address",),
        placement=True,
    ),
    DriverOption(
        "ssh-user",
        "User to log in as: root, or one with passwordless sudo (default root)",
        envvar="FLOTTE_SSH_USER",
        aliases=("generic-ssh-user",),
    ),
    DriverOption("ssh-port", "SSH port (default 22)", type=int, aliases=("generic-ssh-port",)),
    DriverOption(
        "ssh-key",
        "Private key file (default: ssh-agent and ~/.ssh keys)",
        envvar="FLOTTE_SSH_KEY",
        aliases=("generic-ssh-key",),
    ),
    DriverOption(
        "ssh-site",
        "Name of the hosts' network: groups with another site name share no private "
        "network with these hosts and reach them over the WireGuard mesh (default: one "
        "site for every SSH host)",
    ),
    DriverOption(
        "engine-install",
        "When Docker is missing: auto (per distribution), distro, upstream or skip",
        default="auto",
    ),
)


# A DNS name, an IPv4 address, or an IPv6 one (with its zone): ASCII only, as
# getaddrinfo takes them; anything else fails later with an obscure resolver error.
_HOST = re.compile(r"^[A-Za-z0-9_.:%-]+$")


@dataclass(frozen=True)
class HostEntry:
    """One host of an inventory: ``[user@]host[:port] [key=PATH] [user=U] [port=P]``."""

    host: str
    user: str | None = None
    port: int | None = None
    key: str | None = None


def port_number(value: Any, where: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"{where}: SSH port {value!r} is not a number from 1 to 65535")
    return port


def parse_host(text: str) -> HostEntry:
    """Parse ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) plus ``key=value`` words."""
    words = str(text).split()
    if not words:
        raise UsageError("an empty host was given", hint="write hosts as [user@]host[:port]")
    spec, extras = words[0], words[1:]
    user, sep, rest = spec.rpartition("@")
    if not sep:
        user, rest = "", spec
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = port_number(tail[1:], text)
    elif rest.count(":") == 1:
        host, _, p = rest.partition(":")
        port = port_number(p, text)
    else:
        host = rest  # a bare IPv6 address, or a plain name
    if not host:
        raise UsageError(f"host {text!r} has no address", hint="write [user@]host[:port]")
    if not _HOST.match(host):
        raise UsageError(
            f"host {host!r} is not a host name or an address",
            hint="use letters, digits, '-' and '.' (xn-- names for international ones)",
        )
    key = None
    for word in extras:
        k, eq, v = word.partition("=")
        if not eq:
            raise UsageError(f"inventory line {text!r}: {word!r} is not key=value")
        if k == "key":
            key = v
        elif k == "user":
            user = v
        elif k == "port":
            port = port_number(v, text)
        elif k != "role":
            raise UsageError(f"inventory line {text!r}: unknown field {k!r} (key, user, port)")
    return HostEntry(host=host, user=user or None, port=port, key=key)


def load_inventory(path: Path) -> list[HostEntry]:
    """An inventory file: one host per line, ``#`` comments, managers first."""
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(f"cannot read the host inventory {path}: {err.strerror}") from err
    return [
        parse_host(ln.split("#", 1)[0]) for ln in text.splitlines() if ln.split("#", 1)[0].strip()
    ]


def install_choice(options: Mapping[str, Any], default: Any = "auto") -> str:
    """``--engine-install`` as one of distros.INSTALL_CHOICES, or UsageError."""
    choice = str(options.get("engine_install") or default or "auto")
    if choice not in distros.INSTALL_CHOICES:
        raise UsageError(
            f"--engine-install {choice!r}: choose one of {', '.join(distros.INSTALL_CHOICES)}"
        )
    return choice
