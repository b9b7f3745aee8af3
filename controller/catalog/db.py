"""Engines for the catalog: SQLite (WAL) on one machine, PostgreSQL at city scale.

SQLite gets the settings a multi-threaded server needs: WAL (readers never block the writer),
a busy timeout (writers queue instead of failing with "database is locked"), foreign keys
(off by default in SQLite!) and synchronous=FULL: a segment acknowledged to an agent has its
catalog row on disk, so a power cut cannot leave a stored object the catalog forgot (NORMAL
could lose the last commits; no cost was measurable at ingest rates). PostgreSQL goes through
psycopg 3 with pre-ping, so a restarted server costs one retried connection, not an error.

The schema is Alembic's (`controller.catalog.schema`): `make_engine` migrates an empty
database to the newest revision and refuses any other that is not at it (`SchemaError`
naming `vigil-controller db upgrade`); `upgrade_database` is that command.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import create_engine

from controller.catalog import history_models, models  # noqa: F401 - registers the tables
from controller.catalog.errors import CatalogUnavailableError
from controller.catalog.schema import (
    EMPTY,
    SchemaState,
    UpgradeReport,
    current_or_refuse,
    read_state,
    script_directory,
    upgrade_locked,
)

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Replicas starting together on a new SQLite file: one migrates (every revision, each with
# fsyncs), the others wait for its write lock; on a loaded machine that took over 10 s.
SQLITE_MIGRATION_BUSY_TIMEOUT_MS = 300_000
WRITE_OPTION = "vigil_write"  # execution option: this connection's transaction will write


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable url>"


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3; a bare path means SQLite."""
    url = url.strip()
    if not url:
        raise ValueError("catalog url is empty")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser()}"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"catalog url {_redacted(url)} is malformed") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"catalog url {_redacted(url)}: only sqlite and postgresql are supported")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ValueError(f"catalog url {_redacted(url)}: use postgresql+psycopg://")
    return url


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is off; SQLAlchemy emits BEGIN itself (below), so a
    # write transaction can take the write lock up front (BEGIN IMMEDIATE) and queue on the
    # busy timeout, instead of failing when a deferred read transaction tries to upgrade.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


# --- file permissions -------------------------------------------------------------------------
#
# The catalog holds password hashes, the audit log and grant state: its directory is 0700 and
# the database, its WAL and shared-memory files 0600 (SQLite gives -wal/-shm the database
# file's mode, so creating the database 0600 keeps them private too). Checked at every
# start-up: a looser mode is tightened with a warning naming the file; one that cannot be
# fixed (another owner) refuses to start.

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class PermissionProblem(ValueError):
    """A data file or directory is readable by others and cannot be fixed by this user."""


def permission_fix(mode: int, is_dir: bool) -> int | None:
    """The mode to set when `mode` lets group or others in (None: it is private). Pure."""
    wanted = DIR_MODE if is_dir else FILE_MODE
    perms = mode & 0o777
    return None if perms & 0o077 == 0 else perms & wanted


def secure_paths(paths: list[Path]) -> list[str]:
    """Tighten every existing path in `paths` that others can read; returns what was fixed
    (one sentence each). PermissionProblem when one cannot be fixed."""
    fixed: list[str] = []
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        is_dir = path.is_dir()
        new = permission_fix(st.st_mode, is_dir)
        if new is None:
            continue
        try:
            path.chmod(new)
        except OSError as exc:
            raise PermissionProblem(
                f"{path} has mode {st.st_mode & 0o777:04o} (readable by others) and cannot be "
                f"made {new:04o}: {exc.strerror}; fix it by hand (chmod {new:o} {path})"
            ) from None
        fixed.append(f"{path}: mode {st.st_mode & 0o777:04o} -> {new:04o}")
    return fixed


def secure_sqlite(database: Path) -> list[str]:
    """Create the database file private if missing, then check its dir and files."""
    database.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    paths = [Path(f"{database}{s}") for s in SQLITE_SUFFIXES]
    parent = database.parent.stat()
    # The data dir is made private when it is ours; a shared directory (sticky like /tmp, or
    # another user's) is never changed: the 0600 files are what protects the data there.
    if parent.st_uid == os.geteuid() and not parent.st_mode & stat.S_ISVTX:
        paths.insert(0, database.parent)
    elif parent.st_mode & 0o077:
        log.warning(
            "catalog: %s is shared with others: keep the database in its own dir", database.parent
        )
    fixed = secure_paths(paths)
    for line in fixed:
        log.warning("catalog: %s (it holds password hashes, audit and grant state)", line)
    return fixed


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema stands (read only); CatalogUnavailableError when the
    database cannot be read."""
    script = script_directory()
    try:
        with engine.connect() as conn:
            return read_state(conn, script)
    except SQLAlchemyError as exc:
        raise CatalogUnavailableError(f"cannot read the database: {exc}") from exc


def _sqlite_busy_timeout(conn: Connection, ms: int) -> None:
    """Set on the driver's connection directly: a statement through SQLAlchemy would begin a
    transaction first."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA busy_timeout={ms}")
    finally:
        cursor.close()


def upgrade_database(engine: Engine) -> UpgradeReport:
    """Migrate the database to the newest revision, in one locked transaction (what
    `vigil-controller db upgrade` runs). SchemaError when it cannot be (newer, or a
    pre-migration database whose tables differ), CatalogUnavailableError when the
    database fails; nothing is changed then."""
    script = script_directory()
    try:
        with engine.connect() as conn:
            patient = conn.dialect.name == "sqlite"
            if patient:  # another replica may be migrating this file: wait for all of it
                _sqlite_busy_timeout(conn, SQLITE_MIGRATION_BUSY_TIMEOUT_MS)
            conn.execution_options(**{WRITE_OPTION: True})
            try:
                with conn.begin():
                    return upgrade_locked(conn, script)
            finally:
                if patient:
                    _sqlite_busy_timeout(conn, SQLITE_BUSY_TIMEOUT_MS)
    except SQLAlchemyError as exc:
        raise CatalogUnavailableError(f"cannot upgrade (nothing was changed): {exc}") from exc


def ensure_schema(engine: Engine) -> None:
    """An empty database is migrated to head (logged); one at head is used as it is; any
    other raises SchemaError saying what to run."""
    script = script_directory()
    with engine.connect() as conn:
        state = read_state(conn, script)
    if state.kind == EMPTY:
        report = upgrade_database(engine)
        if report.before.kind == EMPTY:
            log.info("catalog: new database, schema created by migrations: %s", report.describe())
        return
    current_or_refuse(state)


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for `url` (sqlite:///path, a bare path, or postgresql+psycopg://...).
    `create`: an empty database gets the schema (by the migrations), and one not at the
    newest revision is refused (SchemaError, engine disposed); False: used as it is (`db`
    commands, read-only tools). ValueError for an unusable URL."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            secure_sqlite(Path(database))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    if create:
        try:
            ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
    if parsed.get_backend_name() == "sqlite" and (parsed.database or "") not in ("", ":memory:"):
        with engine.connect():  # the WAL and shared-memory files exist once connected
            secure_sqlite(Path(parsed.database or ""))
    log.info("catalog database %s", _redacted(url))
    return engine
