"""Engines for the catalog: SQLite (WAL) on one machine, PostgreSQL at city scale.

SQLite gets the settings a multi-threaded server needs: WAL (readers never block the writer),
a busy timeout (writers queue instead of failing with "database is locked"), foreign keys
(off by default in SQLite!) and synchronous=FULL: a segment acknowledged to an agent has its
catalog row on disk, so a power cut cannot leave a stored object the catalog forgot (NORMAL
could lose the last commits; no cost was measurable at ingest rates). PostgreSQL goes through
psycopg 3 with pre-ping, so a restarted server costs one retried connection, not an error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel, create_engine

from controller.catalog import models  # noqa: F401 - registers the tables on SQLModel.metadata

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
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


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for `url` (sqlite:///path, a bare path, or postgresql+psycopg://...),
    with the tables created unless `create` is False. ValueError for an unusable URL."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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
        SQLModel.metadata.create_all(engine)
    log.info("catalog database %s", _redacted(url))
    return engine
