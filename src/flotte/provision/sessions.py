"""SSH sessions to the machines flotte provisions: connect, run as root, upload files.

One :class:`Session` is one asyncssh connection; commands run on channels of it, so a
provisioning step costs one round trip, not one TCP+SSH handshake. What a session adds
to asyncssh:

* **Retries with backoff** for what is transient while a machine boots or a network
  hiccups (connection refused, timeout, no route yet, connection dropped in the
  handshake). Refused credentials and a changed host key are never retried.
* **flotte's own known_hosts file** (OpenSSH format, so ``ssh -o UserKnownHostsFile=``
  reads it too): a host's key is recorded the first time flotte reaches it (trust on
  first use) and any later different key is refused with an error naming the file.
* **Root through sudo** for a non-root login: commands are wrapped in ``sudo -n`` so a
  password prompt can never hang a run; a user without passwordless sudo is told so
  before anything on the host changes.

Secrets never reach the log: file uploads go through stdin and are not logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import logging
import os
import shlex
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from flotte.config import paths
from flotte.errors import AuthError, ProvisionError, Unreachable, UsageError
from flotte.provision.known_hosts import KnownHosts, host_pattern

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSHTarget:
    """Where and as whom to log in. ``key`` None means ssh-agent and ~/.ssh/id_* keys.

    ``attempts`` and ``backoff`` bound retries of transient connection failures;
    ``wait`` keeps retrying for that many seconds in all (a cloud VM that is still
    booting: its sshd refuses connections for a while).
    """

    host: str
    port: int = 22
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None  # default: the installation's secrets/known_hosts
    connect_timeout: float = 10.0
    attempts: int = 4
    backoff: float = 0.5
    wait: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def known_hosts_path(self) -> Path:
        return self.known_hosts or paths().known_hosts


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class ConnectionDropped(Unreachable):
    """The SSH connection went away while work was under way; the work may be redone."""


# ---------------------------------------------------------------------------------------
# trust on first use (the file itself: known_hosts.KnownHosts)


class _TOFUClient(asyncssh.SSHClient):
    """Accepts an unknown host's key only when the host has none recorded yet."""

    def __init__(self, first_use: bool) -> None:
        self.first_use = first_use
        self.rejected: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        if self.first_use:
            return True
        self.rejected = key
        return False


# ---------------------------------------------------------------------------------------
# sessions


_TRANSIENT = (OSError, asyncio.TimeoutError, asyncssh.ConnectionLost)
_DROPPED = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    BrokenPipeError,
    ConnectionResetError,
)


def load_client_key(path: Path) -> asyncssh.SSHKey:
    """Read a private key file, or raise UsageError saying what is wrong with it."""
    try:
        return asyncssh.read_private_key(str(path))
    except FileNotFoundError as err:
        raise UsageError(f"SSH key {path} does not exist", hint="check --ssh-key") from err
    except PermissionError as err:
        raise UsageError(f"SSH key {path} cannot be read by this user") from err
    except IsADirectoryError as err:
        raise UsageError(f"SSH key {path} is a directory, not a key file") from err
    except OSError as err:
        raise UsageError(f"SSH key {path} cannot be read: {err.strerror or err}") from err
    except (asyncssh.KeyImportError, ValueError) as err:
        raise UsageError(
            f"SSH key {path} is not a usable private key ({err})",
            hint="an encrypted key must be loaded in ssh-agent instead of given with --ssh-key",
        ) from err


def _reason(err: BaseException) -> str:
    if isinstance(err, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(err, OSError) and err.errno is not None:
        # getaddrinfo's errors are negative EAI_* codes: os.strerror() cannot name them
        return err.strerror or os.strerror(err.errno)
    return str(err) or type(err).__name__


class Session:
    """An open SSH connection to one host; commands run as root (directly or by sudo)."""

    def __init__(self, target: SSHTarget, conn: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self.conn = conn
        self.is_root = target.user == "root"
        self.log: list[str] = []  # commands run, for error reports (never file contents)

    def _wrap(self, script: str, sudo: bool) -> str:
        command = f"sh -c {shlex.quote(script)}"
        if sudo and not self.is_root:
            # -n: fail instead of prompting; a prompt would hang an unattended run.
            return f"sudo -n {command}"
        return command

    async def run(
        self,
        script: str,
        *,
        sudo: bool = True,
        check: bool = True,
        input: bytes | None = None,
        timeout: float | None = 300,
        what: str | None = None,
    ) -> CommandResult:
        """Run a shell script on the host; raise ProvisionError on failure when ``check``."""
        what = what or script.strip().splitlines()[0][:60]
        self.log.append(what)
        log.debug("%s: %s", self.target.label, what)
        try:
            # Empty input must still reach EOF, or ``cat > file`` waits forever.
            stdin: dict[str, Any] = {"input": input} if input else {"stdin": asyncssh.DEVNULL}
            proc = await self.conn.run(
                self._wrap(script, sudo),
                encoding=None,
                **stdin,
                timeout=timeout,
                check=False,
            )
        except asyncssh.TimeoutError as err:
            raise ProvisionError(
                f"{self.target.host}: {what} did not finish in {timeout:.0f} s"
            ) from err
        except _DROPPED as err:
            raise ConnectionDropped(
                f"the SSH connection to {self.target.label} was lost during '{what}'",
                hint="re-run the command: provisioning picks up where it stopped",
            ) from err
        out = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else ""
        err_text = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else ""
        if proc.exit_status is None and proc.exit_signal is None:
            # the channel closed without an exit status: the connection went away
            raise ConnectionDropped(
                f"the SSH connection to {self.target.label} was lost during '{what}'",
                hint="re-run the command: provisioning picks up where it stopped",
            )
        status = proc.exit_status if proc.exit_status is not None else 128 + 9
        result = CommandResult(status, out, err_text)
        if check and not result.ok:
            detail = (err_text.strip() or out.strip()).splitlines()[-1:] or ["no output"]
            raise ProvisionError(
                f"{self.target.host}: {what} failed (exit {status}): {detail[0][:300]}"
            )
        return result

    async def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically (temp file + rename), as root."""
        directory = os.path.dirname(path)
        tmp = f"{path}.flotte-tmp"
        script = (
            f"umask 077 && mkdir -p {shlex.quote(directory)} && cat > {shlex.quote(tmp)} && "
            f"chmod {mode:o} {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(path)}"
        )
        await self.run(script, input=data, what=f"write {path}")

    async def read(self, path: str) -> bytes | None:
        """The file's content, or None if it does not exist."""
        q = shlex.quote(path)
        proc = await self.run(f"if [ -e {q} ]; then cat {q}; else exit 3; fi", check=False)
        if proc.exit_status == 3:
            return None
        if not proc.ok:
            raise ProvisionError(f"{self.target.host}: cannot read {path}: {proc.stderr.strip()}")
        return proc.stdout.encode()

    async def read_many(self, paths: list[str]) -> dict[str, bytes | None]:
        """Several files in one round trip (None for those that do not exist)."""
        script = "".join(
            f'if [ -e {shlex.quote(p)} ]; then echo "@@file {i}"; base64 < {shlex.quote(p)}; fi\n'
            for i, p in enumerate(paths)
        )
        proc = await self.run(script or "true", what=f"read {len(paths)} files")
        out: dict[str, bytes | None] = dict.fromkeys(paths)
        current: int | None = None
        chunks: dict[int, list[str]] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("@@file "):
                current = int(line.split()[1])
                chunks[current] = []
            elif current is not None:
                chunks[current].append(line)
        for i, lines in chunks.items():
            out[paths[i]] = base64.b64decode("".join(lines))
        return out

    async def put_many(self, files: list[tuple[str, bytes, int]]) -> None:
        """Write several files atomically in one round trip.

        The contents travel in a script on stdin (base64 here-documents), never on a
        command line: ``ps`` on the host and SSH logs never show a private key.
        """
        if not files:
            return
        parts = ["set -e", "umask 077"]
        for path, data, mode in files:
            q, tmp = shlex.quote(path), shlex.quote(f"{path}.flotte-tmp")
            encoded = base64.encodebytes(data).decode()
            parts += [
                f"mkdir -p {shlex.quote(os.path.dirname(path))}",
                f"base64 -d > {tmp} <<'FLOTTE_EOF'\n{encoded}FLOTTE_EOF",
                f"chmod {mode:o} {tmp}",
                f"mv -f {tmp} {q}",
            ]
        script = "\n".join(parts) + "\n"
        names = ", ".join(os.path.basename(p) for p, _, _ in files)
        await self.run("sh -s", input=script.encode(), what=f"write {names}")

    async def check_root(self) -> None:
        """Make sure commands can run as root; raise AuthError before anything changes."""
        if self.is_root:
            return
        proc = await self.run("id -u", sudo=False, check=False)
        if proc.stdout.strip() == "0":
            self.is_root = True
            return
        proc = await self.run("sudo -n true", sudo=False, check=False, what="sudo -n true")
        if not proc.ok:
            user = self.target.user
            raise AuthError(
                f"{user}@{self.target.host} cannot use sudo without a password",
                hint=(
                    f"allow it with \"echo '{user} ALL=(ALL) NOPASSWD:ALL' > "
                    f'/etc/sudoers.d/{user}" or log in as root with --ssh-user root'
                ),
            )

    async def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()


async def _connect_once(target: SSHTarget, client_keys: list[asyncssh.SSHKey] | None) -> Session:
    store = KnownHosts(target.known_hosts_path())
    trusted = store.keys_for(target.host, target.port)
    client = _TOFUClient(first_use=not trusted)
    kwargs: dict[str, Any] = {}
    if client_keys is not None:
        # Like IdentitiesOnly=yes: only the key given, never whatever an agent offers.
        kwargs.update(client_keys=client_keys, agent_path=None)
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client,
            target.host,
            target.port,
            username=target.user,
            known_hosts=(trusted, [], []),
            connect_timeout=target.connect_timeout,
            login_timeout=target.connect_timeout * 3,
            keepalive_interval=15,
            keepalive_count_max=4,
            config=None,
            **kwargs,
        )
    except asyncssh.HostKeyNotVerifiable as err:
        shown = client.rejected.get_fingerprint() if client.rejected else "unknown"
        raise AuthError(
            f"the SSH host key of {target.host}:{target.port} has changed (now {shown}); "
            "this can be an attack, or the host was reinstalled",
            hint=(
                "if the host was reinstalled, forget its old key: "
                f"ssh-keygen -R '{host_pattern(target.host, target.port)}' -f {store.path}"
            ),
        ) from err
    except asyncssh.PermissionDenied as err:
        which = f"the key {target.key}" if target.key else "the keys of ssh-agent and ~/.ssh"
        raise AuthError(
            f"{target.label} refused {which}",
            hint="check --ssh-user and --ssh-key, and the user's ~/.ssh/authorized_keys",
        ) from err
    if client.first_use:
        key = conn.get_server_host_key()
        if key is not None:
            store.add(target.host, target.port, key)
            log.info("recorded the SSH host key of %s (%s)", target.host, key.get_fingerprint())
    return Session(target, conn)


async def connect(target: SSHTarget) -> Session:
    """Open a session, retrying transient failures with exponential backoff."""
    client_keys = [load_client_key(target.key)] if target.key else None
    started = time.monotonic()
    delay = target.backoff
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _connect_once(target, client_keys)
        except (AuthError, UsageError):
            raise
        except (*_TRANSIENT, asyncssh.DisconnectError) as err:
            # A server that hangs up on purpose (banned, protocol error) is not retried;
            # one that is overloaded or still starting up is.
            if isinstance(err, asyncssh.DisconnectError) and err.code not in (
                asyncssh.DISC_CONNECTION_LOST,
                asyncssh.DISC_TOO_MANY_CONNECTIONS,
                asyncssh.DISC_BY_APPLICATION,
            ):
                raise Unreachable(f"{target.label} closed the SSH connection: {err}") from err
            elapsed = time.monotonic() - started
            # "No route" comes after the kernel gave up on ARP: a booting VM (``wait``)
            # may still appear, an existing host at a wrong or dead address will not.
            no_route = isinstance(err, OSError) and err.errno in (
                errno.EHOSTUNREACH,
                errno.ENETUNREACH,
            )
            if no_route and elapsed >= target.wait:
                raise Unreachable(
                    f"cannot reach {target.label} over SSH: {_reason(err)}",
                    hint="check the address and that the host is up",
                ) from err
            if attempt >= target.attempts and elapsed >= target.wait:
                hint = "check the address, that the host is up and that sshd listens"
                if isinstance(err, OSError) and err.errno == errno.ECONNREFUSED:
                    hint = f"nothing accepts SSH connections on port {target.port}"
                raise Unreachable(
                    f"cannot reach {target.label} over SSH after {attempt} attempts "
                    f"({elapsed:.0f} s): {_reason(err)}",
                    hint=hint,
                ) from err
            log.info("%s: %s; retrying in %.1f s", target.label, _reason(err), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


@contextlib.asynccontextmanager
async def session(target: SSHTarget) -> AsyncIterator[Session]:
    """``async with session(target) as s:`` — connect (with retries), close at the end."""
    sess = await connect(target)
    try:
        yield sess
    finally:
        await sess.close()


@dataclass
class HostFacts:
    """What a first look at a host tells: OS, architecture, init system, Docker."""

    os_release: dict[str, str] = field(default_factory=dict)
    machine: str = ""  # uname -m
    init: str = ""  # "systemd", "sysv" or ""
    docker_installed: bool = False
    docker_running: bool = False
    cloud_init: bool = False
    addresses: list[str] = field(default_factory=list)
    hostname: str = ""
    containers_running: int = 0
    live_restore: bool = False
    swarm: bool = False  # the engine is a swarm node (live-restore is refused then)
    dockerd_cmdline: list[str] = field(default_factory=list)


FACTS_SCRIPT = r"""
echo "@machine $(uname -m)"
echo "@hostname $(hostname)"
if [ -d /run/systemd/system ]; then echo "@init systemd";
elif [ -x /etc/init.d/docker ] || [ -d /etc/init.d ]; then echo "@init sysv"; fi
command -v dockerd >/dev/null 2>&1 && echo "@docker installed"
if out=$(docker info --format '{{.ContainersRunning}} {{.LiveRestoreEnabled}} {{.Swarm.LocalNodeState}}' 2>/dev/null); then
  echo "@docker running"
  echo "@dockerinfo $out"
fi
pid=$(cat /var/run/docker.pid 2>/dev/null)
[ -n "$pid" ] && [ -r /proc/$pid/cmdline ] && printf '@cmdline %s\n' "$(tr '\0' '\037' < /proc/$pid/cmdline)"
command -v cloud-init >/dev/null 2>&1 && echo "@cloud-init yes"
if command -v ip >/dev/null 2>&1; then
  ip -o addr show scope global | awk '{split($4,a,"/"); print "@addr " a[1]}'
else
  for a in $(hostname -I 2>/dev/null); do echo "@addr $a"; done
fi
cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
"""


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            try:
                out[key] = " ".join(shlex.split(value))
            except ValueError:
                out[key] = value.strip("\"'")
    return out


async def gather_facts(sess: Session) -> HostFacts:
    """One round trip that reads everything provisioning decides on."""
    proc = await sess.run(FACTS_SCRIPT, what="inspect the host")
    facts = HostFacts()
    rest = []
    for line in proc.stdout.splitlines():
        if line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            if key == "machine":
                facts.machine = value
            elif key == "hostname":
                facts.hostname = value
            elif key == "init":
                facts.init = value
            elif key == "docker":
                facts.docker_installed = True
                facts.docker_running |= value == "running"
            elif key == "dockerinfo":
                parts = value.split()
                facts.containers_running = int(parts[0]) if parts and parts[0].isdigit() else 0
                facts.live_restore = len(parts) > 1 and parts[1] == "true"
                facts.swarm = len(parts) > 2 and parts[2] not in ("inactive", "")
            elif key == "cmdline":
                # NUL-separated arguments, printed with \037 between them: exact
                facts.dockerd_cmdline = [arg for arg in value.split("\x1f") if arg]
            elif key == "cloud-init":
                facts.cloud_init = True
            elif key == "addr" and value and value not in facts.addresses:
                facts.addresses.append(value)
        else:
            rest.append(line)
    facts.os_release = parse_os_release("\n".join(rest))
    return facts
