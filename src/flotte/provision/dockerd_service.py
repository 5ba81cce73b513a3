"""How flotte's engine settings reach an existing dockerd service, without clobbering it.

Pure functions (no I/O), so every rule here is unit-tested. The choice, and why:

* flotte's files all live in ``/etc/docker/flotte`` (certificates, ``daemon.json``,
  environment). dockerd is started with ``--config-file /etc/docker/flotte/daemon.json``
  and that file is the host's own ``/etc/docker/daemon.json`` *merged* with flotte's
  settings, so an adopted engine keeps its log driver, mirrors, data-root...; the host's
  file itself is never edited (``rm`` has nothing to restore).
* ``hosts`` is never put in the JSON: Debian's and Docker's systemd units pass
  ``-H fd://`` (socket activation) and dockerd refuses a setting given both as a flag
  and in the file. The listen addresses go on the command line instead: the unit's own
  ``-H`` flags (or the JSON's ``hosts``, or the default unix socket) plus
  ``-H tcp://0.0.0.0:2376``. The same rule drops from the JSON any key the command
  line already sets.
* systemd: a drop-in (``docker.service.d/50-flotte.conf``) that repeats the unit's
  effective ``ExecStart`` with flotte's flags appended, so distribution specifics
  (``--containerd=...``, ``$DOCKER_OPTS``) survive. sysvinit (Debian's init script): a
  marked block appended to ``/etc/default/docker``, which the script sources.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from flotte.errors import ProvisionError, UsageError
from flotte.provision.engine_config import DOCKER_TLS_PORT, TLS_DIR

HOST_DAEMON_JSON = "/etc/docker/daemon.json"
FLOTTE_DAEMON_JSON = f"{TLS_DIR}/daemon.json"
FLOTTE_ENV = f"{TLS_DIR}/dockerd.env"
SYSTEMD_DROPIN = "/etc/systemd/system/docker.service.d/50-flotte.conf"
SYSV_DEFAULTS = "/etc/default/docker"
BLOCK_BEGIN = "# BEGIN flotte"
BLOCK_END = "# END flotte"
TCP_HOST = f"tcp://0.0.0.0:{DOCKER_TLS_PORT}"
DEFAULT_UNIX = "unix:///var/run/docker.sock"

# dockerd flags whose daemon.json key is spelled differently (plural lists mostly)
_FLAG_TO_KEY = {
    "H": "hosts",
    "host": "hosts",
    "label": "labels",
    "insecure-registry": "insecure-registries",
    "registry-mirror": "registry-mirrors",
    "storage-opt": "storage-opts",
    "exec-opt": "exec-opts",
    "log-opt": "log-opts",
    "add-runtime": "runtimes",
    "default-ulimit": "default-ulimits",
    "authorization-plugin": "authorization-plugins",
    "dns-opt": "dns-opts",
    "dns-search": "dns-search",
    "tlsverify": "tlsverify",
    "D": "debug",
    "l": "log-level",
    "G": "group",
    "g": "data-root",
    "b": "bridge",
    "p": "pidfile",
}
_LIST_KEYS = ("labels", "insecure-registries", "registry-mirrors")


# /proc/PID/cmdline separates arguments with NUL; hosts print it with this instead, so
# arguments come back exactly as the kernel has them (quotes and blanks included).
CMDLINE = "tr '\\0' '\\037' < /proc/$pid/cmdline"
_CMDLINE_SEP = "\x1f"


def proc_cmdline(text: str) -> list[str]:
    """The arguments of a process, as ``CMDLINE`` printed them on the host."""
    return [arg for arg in text.split(_CMDLINE_SEP) if arg]


def split_command(text: str, host: str, *, quoted: bool) -> list[str]:
    """The words of a command line read from ``host`` (untrusted: any text may come).

    ``quoted``: systemd's ``ExecStart`` honours quotes (shell-like); without it the
    words are split on blanks only, as Debian's init script does with ``$DOCKER_OPTS``.
    A quote that never closes is one line naming the host, not a traceback.
    """
    if not quoted:
        return text.split()
    try:
        return shlex.split(text)
    except ValueError as err:
        raise ProvisionError(
            f"{host}: cannot read the docker service's command line ({err}): {text[:120]!r}",
            hint="fix the quoting of ExecStart in docker.service (systemctl cat docker)",
        ) from err


def flag_keys(argv: list[str]) -> set[str]:
    """daemon.json keys that command-line flags in ``argv`` already set."""
    keys = set()
    for token in argv:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0]
        elif token.startswith("-") and len(token) >= 2:
            name = token[1]
        else:
            continue
        keys.add(_FLAG_TO_KEY.get(name, name))
    return keys


def hosts_in(argv: list[str]) -> list[str]:
    """The ``-H``/``--host`` values of a dockerd command line."""
    out = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-H", "--host") and i + 1 < len(argv):
            out.append(argv[i + 1])
            i += 1
        elif token.startswith("--host="):
            out.append(token.split("=", 1)[1])
        elif token.startswith("-H") and len(token) > 2:
            out.append(token[2:].lstrip("="))
        i += 1
    return out


def config_file_in(argv: list[str]) -> str | None:
    for i, token in enumerate(argv):
        if token == "--config-file" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--config-file="):
            return token.split("=", 1)[1]
    return None


def without_config_file(command: str) -> str:
    return re.sub(r"\s--config-file(=|\s+)\S+", "", command)


def load_host_config(raw: bytes | None, path: str = HOST_DAEMON_JSON) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise ProvisionError(
            f"{path} on the host is not valid JSON ({err})",
            hint="fix it (dockerd cannot start with it either), then re-run",
        ) from err
    if not isinstance(data, dict):
        raise ProvisionError(f"{path} on the host is not a JSON object")
    return data


def merge_config(
    host: dict[str, Any], flotte: dict[str, Any], command_line: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """The daemon.json flotte starts dockerd with, and the listen addresses for ``-H``.

    ``command_line`` is every flag dockerd will get (the unit's and flotte's): keys they
    set are left out of the file, so dockerd never sees a setting twice.
    """
    merged: dict[str, Any] = dict(host)
    host_hosts = list(merged.pop("hosts", []) or [])
    for key, value in flotte.items():
        if key == "hosts":
            continue
        if key in _LIST_KEYS and isinstance(merged.get(key), list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    for key in flag_keys(command_line):
        merged.pop(key, None)
    return merged, host_hosts


_LIST_FLAGS = {"labels": "label", "insecure-registries": "insecure-registry"}
_LIST_FLAGS["registry-mirrors"] = "registry-mirror"


def list_flags(flotte: dict[str, Any], unit_argv: list[str]) -> list[str]:
    """flotte's list settings the unit already sets as flags, as flags too.

    dockerd refuses a setting given both as a flag and in the file, so merge_config
    leaves such keys out of the file: without this, ``--engine-label`` would be lost on
    a host whose command line has its own ``--label``.
    """
    taken = flag_keys(unit_argv)
    return [
        f"--{flag}={value}"
        for key, flag in _LIST_FLAGS.items()
        if key in taken
        for value in flotte.get(key, [])
    ]


def listen_flags(unit_argv: list[str], host_hosts: list[str]) -> list[str]:
    """``-H`` flags to add: the unix socket when nothing else is set, and TLS on 2376."""
    existing = hosts_in(unit_argv)
    wanted = [] if existing else (host_hosts or [DEFAULT_UNIX])
    if TCP_HOST not in existing and TCP_HOST not in wanted:
        wanted.append(TCP_HOST)
    return [arg for h in wanted for arg in ("-H", h)]


def parse_systemctl_cat(text: str, skip: str = SYSTEMD_DROPIN) -> str | None:
    """The effective ``ExecStart`` of ``systemctl cat docker.service``, ignoring ``skip``.

    Files are printed in the order systemd applies them, each after a ``# /path`` line;
    an empty ``ExecStart=`` resets the list, as in systemd.
    """
    current: str | None = None
    skipping = False
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("# /"):
            skipping = line[2:].strip() == skip
            continue
        if skipping:
            continue
        if pending:
            line = pending + " " + line.strip()
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if line.strip().startswith("ExecStart="):
            value = line.strip()[len("ExecStart=") :].strip()
            current = value.lstrip("-@+!:") or None
    return current


def _systemd_quote(token: str) -> str:
    quoted = shlex.quote(token)
    return quoted.replace("%", "%%")


def systemd_dropin(exec_start: str, extra: list[str], name: str) -> str:
    """The drop-in: the unit's own command, flotte's flags appended."""
    base = without_config_file(exec_start)
    flags = " ".join(_systemd_quote(t) for t in extra)
    return (
        f"# Written by flotte for machine {name}; `flotte machine rm` removes it.\n"
        "[Service]\n"
        f"EnvironmentFile=-{FLOTTE_ENV}\n"
        "ExecStart=\n"
        f"ExecStart={base} {flags}\n"
    )


def strip_block(text: str, begin: str = BLOCK_BEGIN, end: str = BLOCK_END) -> str:
    """``/etc/default/docker`` without flotte's block (and as it was before it)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(begin):
            inside = True
            continue
        if inside:
            if line.startswith(end):
                inside = False
            continue
        out.append(line)
    return "".join(out)


# Hosts that may not raise resource limits (no CAP_SYS_RESOURCE: LXC and other
# containers used as servers): Debian's /etc/init.d/docker runs `ulimit -n 1048576`
# under `set -e` and dies. The script sources /etc/default/docker first, so a shell
# function there stands in for the ulimit builtin: it tries, and says when it could not.
ULIMIT_BEGIN = "# BEGIN ulimit workaround (flotte)"
ULIMIT_END = "# END ulimit workaround (flotte)"
ULIMIT_BLOCK = (
    f"{ULIMIT_BEGIN}: this host may not raise resource limits (no CAP_SYS_RESOURCE),\n"
    "# which /etc/init.d/docker does under set -e: dockerd keeps the limits it is given.\n"
    'ulimit() { command ulimit "$@" 2>/dev/null || echo "docker: ulimit $* not permitted '
    'here, limits kept" >&2; return 0; }\n'
    f"{ULIMIT_END}\n"
)
# CAP_SYS_RESOURCE is bit 24 of the capability sets in /proc/self/status
CAPABILITIES = "awk '/^CapEff:/ {print $2}' /proc/self/status"
_CAP_SYS_RESOURCE = 1 << 24


def can_raise_limits(cap_eff: str) -> bool:
    """From ``CAPABILITIES``' output: True unless CAP_SYS_RESOURCE is known to be missing."""
    try:
        return bool(int(cap_eff.strip(), 16) & _CAP_SYS_RESOURCE)
    except ValueError:
        return True  # cannot tell: change nothing


def with_ulimit_block(text: str) -> str:
    if ULIMIT_BEGIN in text:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + ULIMIT_BLOCK


def without_ulimit_block(text: str) -> str:
    return strip_block(text, ULIMIT_BEGIN, ULIMIT_END)


def sysv_block(extra: list[str], name: str) -> str:
    """Lines appended to /etc/default/docker; DOCKER_OPTS is word-split by the script."""
    for token in extra:
        if re.search(r"[\s\"'$`\\]", token):
            raise UsageError(
                f"engine option {token!r} cannot be passed through /etc/default/docker",
                hint="hosts without systemd take options without spaces, quotes or '$'",
            )
    flags = " ".join(extra)
    return (
        f"{BLOCK_BEGIN} (machine {name}; `flotte machine rm` removes this block)\n"
        f'DOCKER_OPTS="$DOCKER_OPTS {flags}"\n'
        f"if [ -r {FLOTTE_ENV} ]; then set -a; . {FLOTTE_ENV}; set +a; fi\n"
        f"{BLOCK_END}\n"
    )


def with_block(original: str, block: str) -> str:
    base = strip_block(original)
    if base and not base.endswith("\n"):
        base += "\n"
    return base + block
