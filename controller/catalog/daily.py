"""The accounting per local day (`camera_day`, `class_day`; revision 0016) beside the hourly
rows, and how a period's sums are read from the two.

Why: a month's report summed ~720 hourly rows per camera (12.3 M rows for the Longnan preset,
19 s of SQL). Every write that adds to an hourly row adds the same to its day row, in the same
statement batch and transaction (`add_rows`), so the day rows are exactly the sums of their
hours and share their idempotence: whatever made an hourly delta happen once makes the daily
one happen once. A period is then read as whole local days from the day tables plus, at its
edges, the hours of days it covers only in part (`split_period`).

Days are Asia/Shanghai days (what `report --from 2026-11-01` means): UTC+8 all year, no
daylight saving since 1991, so a day is always 24 whole hours starting at 16:00 UTC and every
hour lies in exactly one day.
"""

from __future__ import annotations

import collections
import functools
import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Select, Table, bindparam, cast, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from controller.catalog.base import chunks
from controller.catalog.history_models import CameraDay, CameraHour, ClassDay, ClassHour

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
LOCAL_OFFSET_US = 8 * HOUR_US  # Asia/Shanghai
MAX_COLUMNS = frozenset({"video_height"})  # kept as the largest value, not added

# A delta key: (camera_id, bucket start) or (camera_id, bucket start, traffic class).
K = TypeVar("K", bound=tuple[Any, ...])

TABLES: dict[str, Table] = {
    str(m.__tablename__): m.__table__  # type: ignore[union-attr]
    for m in (CameraHour, CameraDay, ClassHour, ClassDay)
}


def day_of(t_us: int) -> int:
    """The local midnight (UTC microseconds) starting the Asia/Shanghai day holding `t_us`."""
    return t_us - (t_us + LOCAL_OFFSET_US) % DAY_US


def _ceil(t_us: int, step_us: int, offset_us: int = 0) -> int:
    return t_us + (-(t_us + offset_us)) % step_us


@dataclass(frozen=True, slots=True)
class PeriodParts:
    """Where the hours starting in [start, end) are read: `hours` ranges from the hourly
    tables, `days` (a range of local midnights, or None) from the day tables."""

    hours: tuple[tuple[int, int], ...]
    days: tuple[int, int] | None


def split_period(start_us: int, end_us: int, days: bool = True) -> PeriodParts:
    """Whole local days inside the period come from the day tables (unless not `days`), the
    rest by the hour. Exact: an hour starting in [start, end) is either in one of the whole
    days or in one of the hour ranges, never both."""
    lo, hi = _ceil(start_us, HOUR_US), _ceil(end_us, HOUR_US)
    first = _ceil(lo, DAY_US, LOCAL_OFFSET_US)
    last = day_of(hi)
    if not days or first >= last:
        return PeriodParts(((lo, hi),) if lo < hi else (), None)
    edges = tuple((a, b) for a, b in ((lo, first), (last, hi)) if a < b)
    return PeriodParts(edges, (first, last))


def to_days(deltas: Mapping[K, Mapping[str, int]]) -> dict[K, collections.Counter[str]]:
    """Hourly deltas summed into day deltas (the key's second item, an hour, becomes its
    day); `video_height` keeps the largest (pure)."""
    out: dict[K, collections.Counter[str]] = {}
    for key, counter in deltas.items():
        day_key: K = (key[0], day_of(key[1]), *key[2:])  # type: ignore[assignment]
        into = out.setdefault(day_key, collections.Counter())
        for k, v in counter.items():
            into[k] = max(into[k], v) if k in MAX_COLUMNS else into[k] + v
    return out


def add_rows(
    conn: Connection,
    table: str,
    keys: Sequence[str],
    deltas: Mapping[K, Mapping[str, int]],
) -> None:
    """Add `deltas` to `table` (rows created as needed; MAX_COLUMNS keep the largest). Rows
    go in key order (concurrent writers on PostgreSQL lock them in one order), each run of
    rows touching the same columns in one executemany."""
    rows: list[tuple[tuple[str, ...], dict[str, object]]] = []
    for key, counter in sorted(deltas.items()):
        values = {k: int(v) for k, v in counter.items() if v}
        if values:
            rows.append((tuple(sorted(values)), dict(zip(keys, key, strict=True)) | values))
    for columns, run in itertools.groupby(rows, key=lambda r: r[0]):
        stmt = _upsert(conn.dialect.name, table, tuple(keys), columns)
        conn.execute(stmt, [params for _, params in run])


def add_hours_and_days(
    conn: Connection,
    tables: tuple[str, str],
    keys: Sequence[str],
    deltas: Mapping[K, Mapping[str, int]],
) -> None:
    """Add hourly `deltas` to the hourly table and their day sums to the day table (`tables`:
    hourly, daily; `keys`: the hourly key columns, the second being the hour)."""
    add_rows(conn, tables[0], keys, deltas)
    day_keys = (keys[0], "day_us", *keys[2:])
    add_rows(conn, tables[1], day_keys, to_days(deltas))


@functools.lru_cache(maxsize=512)
def _upsert(
    dialect_name: str, table_name: str, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Executable:
    """The upsert adding to `columns`, built once per dialect, table and column set
    (building it, `excluded` included, cost more than running it: ~0.6 ms per row)."""
    pg = dialect_name == "postgresql"
    dialect = postgresql if pg else sqlite
    biggest = func.greatest if pg else func.max
    table = TABLES[table_name]
    stmt = dialect.insert(table).values({k: bindparam(k) for k in (*keys, *columns)})
    set_ = {
        k: biggest(table.c[k], stmt.excluded[k])
        if k in MAX_COLUMNS
        else table.c[k] + stmt.excluded[k]
        for k in columns
    }
    upsert: Executable = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
    return upsert


# The hourly and the daily table of each kind of accounting.
PAIRS = {"camera": ("camera_hour", "camera_day"), "class": ("class_hour", "class_day")}


@dataclass(frozen=True, slots=True)
class Sums:
    """What to read: the `sums` (and `maxes`) of the hours starting in [start_us, end_us) of
    `kind` ("camera" or "class"), per `group` (column names, "bucket" being the hour's or
    the day's start, a day only when `days`), of `cameras` only when given."""

    kind: str
    start_us: int
    end_us: int
    group: tuple[str, ...]
    sums: tuple[str, ...]
    maxes: tuple[str, ...] = ()
    cameras: Sequence[str] | None = None
    days: bool = True


def period_queries(want: Sums) -> list[Select[tuple[object, ...]]]:
    """The queries whose rows, added up per group, are what `want` asks: whole local days
    from the day table, the hours at the period's edges from the hourly one."""
    parts = split_period(want.start_us, want.end_us, want.days)
    hourly, daily = (TABLES[n] for n in PAIRS[want.kind])
    sources = [(hourly, hourly.c.hour_us, lo, hi) for lo, hi in parts.hours]
    if parts.days is not None:
        sources.append((daily, daily.c.day_us, *parts.days))
    out = []
    for table, bucket, lo, hi in sources:
        keys = [bucket.label("bucket") if g == "bucket" else table.c[g] for g in want.group]
        base = (
            select(
                *keys,
                # bigint, not numeric (a Decimal per value in Python): sums fit in 63 bits
                *(cast(func.sum(table.c[c]), BigInteger).label(c) for c in want.sums),
                *(func.max(table.c[c]).label(c) for c in want.maxes),
            )
            .where(bucket >= lo, bucket < hi)
            .group_by(*keys)
        )
        if want.cameras is None:
            out.append(base)
        else:
            parts_in = chunks(list(want.cameras))
            out += [base.where(table.c.camera_id.in_(part)) for part in parts_in]
    return out


# For the report's aggregates on PostgreSQL, in its read transaction only: a month's
# 1.1 M `class_day` rows hash-aggregate in memory (the default 4 MB sorted them on disk, 2.4x
# slower), and JIT compiling (~80 ms a query) does not pay for a second of work.
_PG_REPORT_SETTINGS = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


def period_rows(conn: Connection, want: Sums) -> dict[tuple[object, ...], list[int]]:
    """`period_queries`' rows merged: group key -> values (the sums, then the maxes)."""
    if conn.dialect.name == "postgresql":
        for setting in _PG_REPORT_SETTINGS:
            conn.execute(text(setting))
    merged: dict[tuple[object, ...], list[int]] = {}
    width, n = len(want.group), len(want.sums)
    for q in period_queries(want):
        for r in conn.execute(q):
            row: tuple[Any, ...] = tuple(r)
            key, values = row[:width], [int(v or 0) for v in row[width:]]
            old = merged.get(key)
            if old is not None:  # an edge hour's rows and a day's of the same key
                values = [*map(operator.add, old[:n], values[:n]), *map(max, old[n:], values[n:])]
            merged[key] = values
    return merged


def period_sums(conn: Connection, want: Sums) -> dict[tuple[object, ...], dict[str, int]]:
    """`period_rows` with named values: group key -> column -> sum (or largest: maxes)."""
    names = (*want.sums, *want.maxes)
    return {k: dict(zip(names, v, strict=True)) for k, v in period_rows(conn, want).items()}
