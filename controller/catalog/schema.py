"""Schema versions of the catalog database, kept by Alembic (`controller/catalog/migrations/`).

A controller runs on exactly one schema revision, the newest file in `migrations/versions/`
("head"). What it finds in a database decides what happens (`classify`, pure):

    empty     no Vigil table, no version: migrated to head (what `serve` on a new install,
              the demo and the tests do; logged)
    current   at head: nothing to do
    behind    an older revision: `serve` refuses, `vigil-controller db upgrade` migrates
    legacy    Vigil tables without `alembic_version` (a release before migrations): `serve`
              refuses; `db upgrade` checks the tables are that release's (revision 0001),
              creates the ones it had not created yet, stamps 0001 and migrates
    ahead     a revision this controller does not know (a newer release migrated it):
              refused, since downgrades are not supported

Every change runs in one transaction holding a lock (PostgreSQL: an advisory transaction
lock; SQLite: BEGIN IMMEDIATE), and looks again once it holds it: two replicas starting on
the same new database migrate it once, and a failed migration leaves nothing half done
(both engines have transactional DDL).

The Alembic environment is configured here, in code (no alembic.ini): `alembic_config`
points at the migrations directory shipped inside the package and hands `env.py` the
connection to use.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"
BASELINE_MODULE = "controller.catalog.migrations.versions.v0001_baseline"
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key of schema changes ("VIGIL" then 1), released at commit/rollback.
PG_LOCK_KEY = 0x5649_4749_4C01

# Alembic's `context` and `op` (what env.py and every revision call) are process-global
# proxies: two threads migrating two databases at once would run each other's operations on
# the wrong connection. Migrations are rare and short, so they run one at a time per process
# (taken after the database's own lock, never while waiting for one: no lock-order cycle).
_ALEMBIC_PROXIES = threading.Lock()

EMPTY = "empty"
CURRENT = "current"
BEHIND = "behind"
LEGACY = "legacy"
AHEAD = "ahead"

UPGRADE_COMMAND = "vigil-controller db upgrade"


class SchemaError(Exception):
    """The database is not on the schema this controller runs on; the message says what to do."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    kind: str  # EMPTY, CURRENT, BEHIND, LEGACY or AHEAD
    current: str | None  # the database's revision (None: no alembic_version row)
    head: str

    def describe(self) -> str:
        """One sentence for `db current` and the logs."""
        if self.kind == EMPTY:
            return f"empty database (no schema yet; head is {self.head})"
        if self.kind == LEGACY:
            return (
                f"no schema version: created by a release before migrations (head is {self.head})"
            )
        if self.kind == CURRENT:
            return f"revision {self.current} (head): up to date"
        if self.kind == BEHIND:
            return f"revision {self.current}, head is {self.head}: run `{UPGRADE_COMMAND}`"
        return f"revision {self.current} is unknown to this release (head {self.head}): newer"


def classify(
    heads: tuple[str, ...], tables: set[str], head: str, known: set[str], baseline: set[str]
) -> SchemaState:
    """What a database with version rows `heads` and tables `tables` is, to a controller whose
    newest revision is `head` and that knows revisions `known` (`baseline`: the tables of
    revision 0001, whose presence tells a pre-migration database from an empty one). Pure."""
    if not heads:
        return SchemaState(LEGACY if tables & baseline else EMPTY, None, head)
    if len(heads) > 1 or heads[0] not in known:
        return SchemaState(AHEAD, ",".join(heads), head)
    return SchemaState(CURRENT if heads[0] == head else BEHIND, heads[0], head)


def refusal(state: SchemaState) -> str | None:
    """Why `serve` (and every command that opens the catalog) must not run on `state`, with
    the command that fixes it; None when it may. Pure."""
    if state.kind in (CURRENT, EMPTY):
        return None
    if state.kind == BEHIND:
        return (
            f"the database schema is at revision {state.current}, this controller needs "
            f"{state.head}: back up the database, then run `{UPGRADE_COMMAND}` (with the same "
            "--config/--data-dir) and start again"
        )
    if state.kind == LEGACY:
        return (
            "the database was created by a Vigil release without schema versions: back up the "
            f"database, then run `{UPGRADE_COMMAND}` (with the same --config/--data-dir) and "
            "start again"
        )
    return (
        f"the database schema is at revision {state.current}, newer than this controller "
        f"knows (its newest is {state.head}): it was upgraded by a newer release; run that "
        "release (downgrades are not supported; restore a backup to go back)"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration, in code: migrations from the package, `connection` for
    env.py (no alembic.ini, so an installed wheel migrates the same way as a checkout)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _baseline_module() -> ModuleType:
    return importlib.import_module(BASELINE_MODULE)


def baseline_metadata() -> MetaData:
    """The tables of revision 0001 (the release before migrations), as that file defines them."""
    metadata: MetaData = _baseline_module().baseline()
    return metadata


def read_state(conn: Connection, script: ScriptDirectory) -> SchemaState:
    """The database's schema state (reads the table names and `alembic_version` only)."""
    tables = set(inspect(conn).get_table_names())
    heads: tuple[str, ...] = ()
    if VERSION_TABLE in tables:
        rows = conn.execute(text("SELECT version_num FROM alembic_version"))
        heads = tuple(sorted(str(row[0]) for row in rows))
    known = {rev.revision for rev in script.walk_revisions()}
    head = script.get_current_head()
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}: the installation is broken")
    return classify(heads, tables, head, known, set(_baseline_module().TABLES))


def _run(conn: Connection, script: ScriptDirectory, target: str, stamp: bool) -> None:
    """Alembic's `upgrade`/`stamp` commands on `conn`, with the already loaded `script`
    (the commands would load the revision files again: most of a new database's cost)."""

    def step(rev: Any, _context: Any) -> Any:
        if stamp:
            return script._stamp_revs(target, rev)
        return script._upgrade_revs(target, rev)

    config = alembic_config(conn)
    with (
        _ALEMBIC_PROXIES,
        EnvironmentContext(config, script, fn=step, destination_rev=target),
    ):
        script.run_env()


def lock(conn: Connection) -> None:
    """Serialise schema changes between processes until this transaction ends (PostgreSQL;
    on SQLite the caller's BEGIN IMMEDIATE already holds the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})


def legacy_differences(conn: Connection) -> tuple[list[str], list[str]]:
    """(tables of revision 0001 the database lacks, differences in those it has): a
    pre-migration database may miss tables its stores created on first use only; any other
    difference means it is not what that release made, and nothing is stamped."""
    baseline = baseline_metadata()
    existing = set(inspect(conn).get_table_names())
    missing = sorted(set(baseline.tables) - existing)

    def ours(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or (name in baseline.tables and name in existing)

    context = MigrationContext.configure(conn, opts={"include_name": ours})
    present = MetaData()
    for table in baseline.sorted_tables:
        if table.name in existing:
            table.to_metadata(present)
    diffs = [str(d) for d in compare_metadata(context, present)]
    return missing, diffs


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    before: SchemaState
    after: str
    created: tuple[str, ...] = ()  # legacy: tables of 0001 that did not exist yet

    def describe(self) -> str:
        if self.before.kind == CURRENT:
            return f"already at revision {self.after} (head): nothing to do"
        start = {
            EMPTY: "empty database",
            LEGACY: f"pre-migration database (stamped {BASELINE})",
        }.get(self.before.kind, f"revision {self.before.current}")
        made = f"; created missing tables {', '.join(self.created)}" if self.created else ""
        return f"{start} -> revision {self.after}{made}"


def upgrade_locked(conn: Connection, script: ScriptDirectory) -> UpgradeReport:
    """Migrate the database on `conn` (inside a transaction the caller commits) to head."""
    lock(conn)
    state = read_state(conn, script)
    created: tuple[str, ...] = ()
    if state.kind == AHEAD:
        raise SchemaError(refusal(state) or "")
    if state.kind == CURRENT:
        return UpgradeReport(state, state.head)
    if state.kind == LEGACY:
        missing, diffs = legacy_differences(conn)
        if diffs:
            shown = "\n  ".join(diffs[:20])
            raise SchemaError(
                "the database has Vigil tables but not as the release before migrations made "
                f"them, so it is not stamped (nothing was changed):\n  {shown}"
            )
        baseline = baseline_metadata()
        baseline.create_all(conn, tables=[baseline.tables[name] for name in missing])
        created = tuple(missing)
        _run(conn, script, BASELINE, stamp=True)
    _run(conn, script, "head", stamp=False)
    return UpgradeReport(state, state.head, created)


def current_or_refuse(state: SchemaState) -> None:
    reason = refusal(state)
    if reason is not None:
        raise SchemaError(reason)


__all__ = [
    "AHEAD",
    "BASELINE",
    "BEHIND",
    "CURRENT",
    "EMPTY",
    "LEGACY",
    "MIGRATIONS_DIR",
    "SchemaError",
    "SchemaState",
    "UpgradeReport",
    "alembic_config",
    "classify",
    "current_or_refuse",
    "legacy_differences",
    "read_state",
    "refusal",
    "script_directory",
    "upgrade_locked",
]
