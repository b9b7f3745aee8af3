"""What every part of the catalog shares: connections, transactions, error translation.

Reads use a plain (deferred) transaction; writes are one transaction each and, on SQLite,
start with BEGIN IMMEDIATE (see db.py). Database errors are translated here, once: a broken
constraint becomes CatalogError, anything else from the driver CatalogUnavailableError.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from controller.catalog.db import WRITE_OPTION
from controller.catalog.errors import CatalogError, CatalogUnavailableError, InvalidInputError
from controller.catalog.models import SegmentRow
from controller.clock import Clock

IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's parameter caps


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def segment_from(mapping: Any) -> SegmentRow:
    return SegmentRow.model_validate(dict(mapping))


class CatalogBase:
    """Connections, transactions and error translation shared by the catalog's parts."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> Engine:
        return self._engine

    @contextmanager
    def _read(self, op: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except CatalogError:
            raise
        except DataError as exc:
            raise InvalidInputError(f"{op}: {exc.orig}") from exc
        except DBAPIError as exc:
            raise CatalogUnavailableError(f"{op}: {exc.orig}") from exc

    @contextmanager
    def _write(self, op: str) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except CatalogError:
            raise
        except IntegrityError as exc:
            raise CatalogError(f"{op}: constraint violated: {exc.orig}") from exc
        except DataError as exc:
            raise InvalidInputError(f"{op}: {exc.orig}") from exc
        except DBAPIError as exc:
            raise CatalogUnavailableError(f"{op}: {exc.orig}") from exc

    def _upsert(self, conn: Connection, table: Any, values: dict[str, Any], key: str) -> None:
        """INSERT ... ON CONFLICT (key) DO UPDATE: atomic, with no read-then-write race."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values)
        changes = {k: stmt.excluded[k] for k in values if k not in (key, "created_at_us")}
        conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_=changes))
