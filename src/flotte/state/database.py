"""Opening the state database: first use, permissions, schema, and what can go wrong.

``open_database`` is the one way flotte opens its database. On first use it makes the
file 0600 in a 0700 directory, brings the schema to the newest Alembic revision and
gives the installation its id, all under one lock, so commands started together on a
new home neither race each other nor see a half-made schema. Every later open costs one
query (the schema revision) and takes no lock.

What goes wrong with a database on disk is said in one line, with what to do, and
nothing is overwritten:

* damaged or truncated (not a database, a malformed page): restore or move it away;
* written by a newer flotte (a schema revision this one does not know): upgrade flotte;
* read-only (the file, or the whole home): reading commands work, writing commands say
  that the database is read-only and where.

PostgreSQL (``flotte serve``) gets the same first-use rule through an advisory lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError

from flotte.config import private_dir, writable
from flotte.errors import Busy, FlotteError
from flotte.state import lock

MIGRATIONS = Path(__file__).parent / "migrations"


class StateError(FlotteError):
    """The state database cannot be used as it is (damaged, newer, read-only...)."""


@dataclass(frozen=True)
class Database:
    """An open database: its engine, whether it can be written, the installation id."""

    engine: Engine
    url: str
    read_only: bool
    installation: str


def open_database(url: str, *, head: str) -> Database:
    """Open the database at ``url``; on first use migrate it to ``head`` under a lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return _open_sqlite(Path(str(parsed.database)), head)
    engine = create_engine(url)
    where = parsed.render_as_string(hide_password=True)
    _guard(engine, where)
    installation = _ready(engine, head, where)
    if installation is None:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # one first use at a time across every process on every machine
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(url)})
            installation = _first_use(conn, head, where)
    return Database(engine, url, False, installation)


# -- SQLite ------------------------------------------------------------------------------


def _open_sqlite(path: Path, head: str) -> Database:
    where = str(path)
    directory = path.parent
    try:
        private_dir(directory)
    except OSError as err:
        raise StateError(
            f"cannot make the directory of the state database {directory}: {err.strerror}",
            hint="set FLOTTE_HOME to a directory you can write",
        ) from err
    can_write_dir = writable(directory)
    if not path.exists():
        if not can_write_dir:
            raise StateError(
                f"the state database {where} does not exist and {directory} is read-only",
                hint="run a first command on a writable FLOTTE_HOME, or make it writable",
            )
        _create_private(path)
    _tighten(path)
    read_only = not can_write_dir or not os.access(path, os.R_OK | os.W_OK)
    engine = _sqlite_engine(path, read_only=read_only, immutable=not can_write_dir)
    _guard(engine, where, _why_read_only(path) if read_only else "")
    installation = _ready(engine, head, where)
    if installation is not None:
        return Database(engine, str(engine.url), read_only, installation)
    if read_only:
        _check_known(_revision(engine, where), head, where)
        raise StateError(
            f"the state database {where} needs a schema upgrade but is read-only",
            hint="run one flotte command as its owner on a writable home first",
        )
    with lock.first_use(directory / "locks" / "database.lock"):
        # only a database known to be flotte's (or empty) is changed, WAL mode included
        _check_known(_revision(engine, where), head, where)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers don't block the writer
        with engine.begin() as conn:
            # pysqlite opens no transaction before DDL: each CREATE TABLE would commit on
            # its own, and a command killed here left tables without a revision that
            # broke every later command. One explicit transaction makes it all or nothing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            installation = _first_use(conn, head, where)
        lock.sweep(directory / "locks")
    return Database(engine, str(engine.url), False, installation)


def _why_read_only(path: Path) -> str:
    directory = path.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"{directory} is on a read-only file system"
    except OSError:
        pass
    if not os.access(directory, os.W_OK):
        return f"you cannot write in {directory}"
    return "you cannot write the file"


def _create_private(path: Path) -> None:
    # another command may make it first: fine, SQLite takes it from there
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _tighten(path: Path) -> None:
    """flotte.db and its -wal/-shm files 0600 (older versions made them 0644)."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            st = p.stat()
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                p.chmod(0o600)


def _sqlite_engine(path: Path, *, read_only: bool, immutable: bool) -> Engine:
    if read_only:
        # SQLite needs to make a -shm file to read a WAL database; in a directory it
        # cannot write, "immutable" reads the file as it is (nobody can write it either).
        extra = "&immutable=1" if immutable else ""
        uri = f"file:{path}?mode=ro{extra}"
        engine = create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
        )
    else:
        engine = create_engine(f"sqlite:///{path}")

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA foreign_keys=ON")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: still consistent,
        # and a killed flotte loses nothing; only an OS crash may roll back the last
        # commits, which a re-run adopts by owner marks. FULL cost ~3 ms of fsync per
        # commit here, 4 commits per node: 12 s of a 1,000-node create (bench/scale.py).
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    return engine


# -- errors --------------------------------------------------------------------------------

_UNREACHABLE = ("connection failed", "could not connect", "connection refused")
_DAMAGED = ("file is not a database", "malformed", "database corrupt", "database disk image")


def describe(err: BaseException, where: str, why_read_only: str = "") -> FlotteError | None:
    """One line for a database error a user can act on, or None for a program error."""
    message = str(getattr(err, "orig", None) or err)
    low = message.lower()
    if any(marker in low for marker in _DAMAGED):
        return StateError(
            f"the state database {where} is damaged ({message})",
            hint="restore it from a backup, or move it away to start afresh "
            "(what it recorded is then forgotten, not deleted)",
        )
    if "readonly" in low or "read-only" in low:
        why = f" ({why_read_only})" if why_read_only else ""
        return StateError(
            f"the state database {where} is read-only{why}: this command needs to change it",
            hint="reading commands work; run this one where the home is writable by you",
        )
    if "database is locked" in low:
        return Busy(
            f"the state database {where} stayed locked by another command for 10 s",
            hint="re-run when it has finished",
        )
    if "disk is full" in low or "disk i/o error" in low or "unable to open database" in low:
        return StateError(f"cannot use the state database {where}: {message}")
    if any(marker in low for marker in _UNREACHABLE):  # a database server (PostgreSQL)
        return StateError(
            f"cannot open the state database {where}: {message.strip().splitlines()[0]}",
            hint="check that its server runs, and the URL (FLOTTE_DATABASE_URL, --database-url)",
        )
    return None


def _guard(engine: Engine, where: str, why_read_only: str = "") -> None:
    """Turn the database errors a user can act on into one line, wherever they happen."""

    def translate(ctx: ExceptionContext) -> None:
        if isinstance(ctx.original_exception, sqlite3.DatabaseError | DBAPIError):
            said = describe(ctx.original_exception, where, why_read_only)
            if said is not None:
                raise said from ctx.original_exception

    event.listen(engine, "handle_error", translate)


# -- schema ----------------------------------------------------------------------------------


def _revision(engine: Engine, where: str) -> str | None:
    """The schema revision, None for an empty database; raises StateError when unusable."""
    try:
        with engine.connect() as conn:
            return revision_of(conn, where)
    except FlotteError:
        raise
    except (DBAPIError, sqlite3.DatabaseError) as err:
        raise describe(err, where) or StateError(f"cannot read {where}: {err}") from err


def revision_of(conn: Connection, where: str) -> str | None:
    """The schema revision seen on ``conn`` (None: an empty database)."""
    if conn.dialect.name == "sqlite":
        listing = "SELECT name FROM sqlite_master WHERE type='table'"
    else:
        listing = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    tables = {str(t) for t in conn.execute(text(listing)).scalars()}
    if "alembic_version" not in tables:
        others = tables - {"sqlite_sequence"}
        if others:
            raise StateError(
                f"{where} is not a flotte state database (tables "
                f"{', '.join(sorted(others)[:5])}, no schema revision)",
                hint="move it away, or point FLOTTE_HOME elsewhere",
            )
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def known_revisions() -> list[str]:
    """Every schema revision this flotte knows, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _check_known(revision: str | None, head: str, where: str) -> None:
    if revision is not None and revision not in known_revisions():
        raise StateError(
            f"the state database {where} was written by a newer flotte "
            f"(schema {revision}; this flotte knows up to {head})",
            hint="upgrade flotte; nothing was changed",
        )


def _upgrade(conn: Connection, head: str, where: str) -> None:
    """Bring the schema to ``head`` on ``conn`` (inside its transaction, under the lock)."""
    current = revision_of(conn, where)
    if current == head:
        return  # another command did it while this one waited for the lock
    _check_known(current, head, where)
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, head)


def _ready(engine: Engine, head: str, where: str) -> str | None:
    """The installation id when the schema is at ``head`` and the id made (no lock)."""
    if _revision(engine, where) != head:
        return None
    with engine.connect() as conn:
        return _installation(conn)


def _installation(conn: Connection) -> str | None:
    row = conn.execute(text("SELECT value FROM meta WHERE key = 'installation'")).first()
    return str(row[0]) if row else None


def _first_use(conn: Connection, head: str, where: str) -> str:
    """Schema and installation id in one transaction: others see both or neither."""
    _upgrade(conn, head, where)
    found = _installation(conn)
    if found is not None:
        return found
    value = uuid.uuid4().hex[:12]
    conn.execute(text("INSERT INTO meta (key, value) VALUES ('installation', :v)"), {"v": value})
    return value


def _lock_key(url: str) -> int:
    return zlib.crc32(f"flotte-first-use:{url}".encode()) & 0x7FFFFFFF
