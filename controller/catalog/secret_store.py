"""The `controller_secret` table: keys every controller replica on this database shares.

Only storage here (rows of name, scheme, value); what the keys are, how a value is wrapped
and when one is adopted from a key file is `controller.grants.keys`. A key is written once,
insert-if-absent: two replicas starting together both offer one, exactly one row wins, and
both read the winner back. Rows are never overwritten except to wrap a raw value in place
(same key, now protected), which only succeeds while the row still holds what was read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import BigInteger, Table, Text, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, SQLModel

WRITE_OPTION = "vigil_write"  # the catalog engine's hint: BEGIN IMMEDIATE on SQLite


class SecretStoreError(Exception):
    """The controller_secret table could not be read or written (database down, or a
    database not migrated: `vigil-controller db upgrade`)."""


@contextmanager
def _translated(op: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise SecretStoreError(f"cannot {op} the shared keys: {exc}") from exc


class ControllerSecret(SQLModel, table=True):
    __tablename__ = "controller_secret"

    name: str = Field(primary_key=True, max_length=64)
    scheme: str = Field(max_length=16)
    value: str = Field(sa_type=Text)
    created_at_us: int = Field(sa_type=BigInteger)


TABLE: Table = ControllerSecret.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StoredSecret:
    name: str
    scheme: str
    value: str


class SecretStore:
    """Rows of `controller_secret` (the table comes with the schema: revision 0002)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, name: str) -> StoredSecret | None:
        with _translated("read"), self._engine.connect() as conn:
            row = conn.execute(
                select(TABLE.c.scheme, TABLE.c.value).where(TABLE.c.name == name)
            ).first()
        return None if row is None else StoredSecret(name, row.scheme, row.value)

    def offer(self, name: str, scheme: str, value: str, now_us: int) -> StoredSecret:
        """Store `value` unless a row for `name` exists; returns the row that is stored now
        (ours, or the one another replica wrote first)."""
        values = {"name": name, "scheme": scheme, "value": value, "created_at_us": now_us}
        dialect = self._engine.dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(TABLE).values(values)
        with _translated("store"), self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        stored = self.get(name)
        if stored is None:  # pragma: no cover - the row was just written or already there
            raise RuntimeError(f"controller_secret {name!r} vanished after insert")
        return stored

    def rewrap(self, name: str, old_value: str, scheme: str, value: str) -> bool:
        """Replace `old_value` (as read) by the same key in another form; False when the row
        changed meanwhile (another replica wrapped it first)."""
        with _translated("wrap"), self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                done = conn.execute(
                    update(TABLE)
                    .where(TABLE.c.name == name, TABLE.c.value == old_value)
                    .values(scheme=scheme, value=value)
                )
        return bool(done.rowcount)


__all__ = ["ControllerSecret", "SecretStore", "SecretStoreError", "StoredSecret"]
