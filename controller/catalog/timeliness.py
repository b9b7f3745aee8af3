"""Upload timeliness per traffic class (`segment.traffic_class`, `class_hour`; revision 0015).

The class of a segment is what the scheduler *granted*: the leader knows each lease it issued
(segment id -> class) and, when its delivery probe finds a leased segment committed, hands
that pair here. Nothing an agent says is taken for the class (an agent cannot name one in an
upload), so a device cannot make its backfill look like evidence delivered on time.

- Each segment is classified at most once: the UPDATE only touches rows still at 0, and only
  the rows it changed (RETURNING) are added to `class_hour`, in the same transaction. A
  second leader, a retried round or a later lease for the same segment changes nothing.
- The delay is the one `camera_hour` counts (commit time minus the segment's end), in the
  same buckets, in the hour the segment starts in; so a camera-hour's unclassified uploads
  are its `camera_hour` histogram minus its `class_hour` rows.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import case, update
from sqlalchemy.engine import Connection

from controller.catalog.accounting import delay_column, hour_of
from controller.catalog.daily import Sums, add_hours_and_days, period_rows
from controller.catalog.errors import InvalidInputError
from controller.catalog.history_models import DELAY_COLUMNS
from controller.catalog.models import Segment
from controller.traffic import TrafficClass

CLASS_VALUES = frozenset(int(c) for c in TrafficClass)
_CHUNK = 500  # segment ids per UPDATE

ClassKey = tuple[str, int, int]  # (camera_id, hour_us, traffic_class)


class ClassError(InvalidInputError):
    """A classification the catalog refuses (unknown class, malformed segment id)."""


@dataclass(frozen=True, slots=True)
class Classified:
    """A segment the classification changed: what its delay histogram needs."""

    camera_id: str
    start_us: int
    end_us: int
    committed_at_us: int
    traffic_class: int


def check_classes(classes: Mapping[str, int]) -> dict[str, int]:
    """`classes` as plain {segment id: class value}, or ClassError naming the first bad
    entry (checked whole before anything is written)."""
    out: dict[str, int] = {}
    for segment_id, value in classes.items():
        if not isinstance(segment_id, str) or not 0 < len(segment_id) <= 128:
            raise ClassError(f"segment id {str(segment_id)[:80]!r} is not 1-128 characters")
        if isinstance(value, bool) or int(value) not in CLASS_VALUES:
            names = ", ".join(f"{int(c)} {c.name.lower()}" for c in TrafficClass)
            raise ClassError(f"segment {segment_id!r}: unknown traffic class {value!r} ({names})")
        out[segment_id] = int(value)
    return out


def class_deltas(rows: Iterable[Classified]) -> dict[ClassKey, collections.Counter[str]]:
    """What classifying `rows` adds to `class_hour` (pure)."""
    deltas: dict[ClassKey, collections.Counter[str]] = {}
    for r in rows:
        counter = deltas.setdefault(
            (r.camera_id, hour_of(r.start_us), r.traffic_class), collections.Counter()
        )
        counter["segments"] += 1
        counter[delay_column(r.committed_at_us - r.end_us)] += 1
    return deltas


def classify(conn: Connection, classes: Mapping[str, int]) -> list[Classified]:
    """Set the class of those segments in `classes` not classified yet and add them to
    `class_hour` (same transaction: `conn` is in one); returns the segments changed.
    ClassError (nothing written) for an unknown class."""
    wanted = check_classes(classes)
    seg = Segment.__table__  # type: ignore[attr-defined]
    changed: list[Classified] = []
    ids = sorted(wanted)
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        stmt = (
            update(seg)
            .where(seg.c.segment_id.in_(part), seg.c.traffic_class == 0)
            .values(traffic_class=case({s: wanted[s] for s in part}, value=seg.c.segment_id))
            .returning(
                seg.c.camera_id,
                seg.c.start_us,
                seg.c.end_us,
                seg.c.committed_at_us,
                seg.c.traffic_class,
            )
        )
        changed += [
            Classified(str(c), int(s), int(e), int(at), int(k))
            for c, s, e, at, k in conn.execute(stmt)
        ]
    apply_class_deltas(conn, class_deltas(changed))
    return changed


def apply_class_deltas(
    conn: Connection, deltas: Mapping[ClassKey, collections.Counter[str]]
) -> None:
    """Add `deltas` to `class_hour` and their day sums to `class_day` (same transaction)."""
    add_hours_and_days(
        conn, ("class_hour", "class_day"), ("camera_id", "hour_us", "traffic_class"), deltas
    )


def class_sums(
    conn: Connection, start_us: int, end_us: int, cameras: Sequence[str] | None = None
) -> dict[str, dict[int, list[int]]]:
    """camera -> class -> delay histogram (DELAY_COLUMNS order) over the hours starting in
    [start_us, end_us) (whole local days from `class_day`); only `cameras` when given."""
    group = ("camera_id", "traffic_class")
    merged = period_rows(conn, Sums("class", start_us, end_us, group, DELAY_COLUMNS, (), cameras))
    out: dict[str, dict[int, list[int]]] = {}
    for (camera_id, cls), counts in merged.items():
        out.setdefault(str(camera_id), {})[int(cls)] = counts  # type: ignore[call-overload]
    return out
