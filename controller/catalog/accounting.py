"""Hourly loss accounting (`camera_hour`), kept current by the writes that carry the facts.

- A segment committed by ingest adds its duration to `recorded_us` and `uploaded_us` of the
  hours it covers (split exactly at hour boundaries), its upload delay (commit time minus the
  segment's end) to one histogram bucket of the hour it starts in, and, in the same
  transaction as its row, any recording gap it closes: a hole between two segments that
  chain to each other (`prev_sha256` names the neighbour) is time the camera recorded
  nothing. Each neighbouring pair is counted once, by whichever of the two arrives second, so
  out-of-order uploads count the same as in-order ones. Holes next to evicted segments break
  the chain and count as eviction, not as a gap.
- A loss report (an unsent segment evicted by the agent) adds to `recorded_us` and
  `evicted_us`, once per report (the `loss_event` row is its idempotence key).

The pure parts (hour splitting, bucket choice, deltas) are functions; `apply_deltas` is the
one statement kind: INSERT ... ON CONFLICT DO UPDATE adding to the row, to the hour's row and
to its local day's (`camera_day`, controller/catalog/daily.py) in the same transaction.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlmodel import col

from controller.catalog.daily import add_hours_and_days
from controller.catalog.history_models import DELAY_BOUNDS_S, DELAY_COLUMNS
from controller.catalog.models import Segment, SegmentMediaRow, SegmentRow

US = 1_000_000
HOUR_US = 3600 * US
# A hole shorter than this between chained segments is timestamp jitter, not a gap.
GAP_TOLERANCE_US = 1 * US

Key = tuple[str, int]  # (camera_id, hour_us)
Deltas = dict[Key, collections.Counter[str]]


def hour_of(t_us: int) -> int:
    return t_us - t_us % HOUR_US


def split_hours(start_us: int, end_us: int) -> list[tuple[int, int]]:
    """[(hour_us, microseconds of [start, end) in that hour)], oldest first."""
    out: list[tuple[int, int]] = []
    t = start_us
    while t < end_us:
        hour = hour_of(t)
        stop = min(end_us, hour + HOUR_US)
        out.append((hour, stop - t))
        t = stop
    return out


def delay_column(delay_us: int) -> str:
    """The histogram column counting an upload delay of `delay_us` (negative counts as 0)."""
    for bound, name in zip(DELAY_BOUNDS_S, DELAY_COLUMNS, strict=False):
        if delay_us <= bound * US:
            return name
    return DELAY_COLUMNS[-1]


def add_span(deltas: Deltas, camera_id: str, start_us: int, end_us: int, *cols: str) -> None:
    for hour, us in split_hours(start_us, end_us):
        counter = deltas.setdefault((camera_id, hour), collections.Counter())
        for c in cols:
            counter[c] += us


def segment_deltas(rows: Iterable[SegmentRow], committed_us: int) -> Deltas:
    """What committing `rows` adds (without gaps: those need the neighbours)."""
    deltas: Deltas = {}
    for r in rows:
        add_span(deltas, r.camera_id, r.start_us, r.end_us, "recorded_us", "uploaded_us")
        first = deltas.setdefault((r.camera_id, hour_of(r.start_us)), collections.Counter())
        first["segments"] += 1
        first["uploaded_bytes"] += r.size_bytes
        first[delay_column((r.committed_at_us or committed_us) - r.end_us)] += 1
    return deltas


def loss_deltas(camera_id: str, start_us: int, end_us: int, size_bytes: int) -> Deltas:
    deltas: Deltas = {}
    add_span(deltas, camera_id, start_us, end_us, "recorded_us", "evicted_us")
    if start_us < end_us:
        deltas[(camera_id, hour_of(start_us))]["evicted_bytes"] += size_bytes
    return deltas


def gap_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[int, int] | None:
    """The recording gap between two neighbouring segments, if they chain and are apart."""
    if not after["prev_sha256"] or after["prev_sha256"] != before["sha256"]:
        return None
    if after["start_us"] - before["end_us"] < GAP_TOLERANCE_US:
        return None
    return before["end_us"], after["start_us"]


def apply_deltas(conn: Connection, deltas: Deltas) -> None:
    """Add `deltas` to `camera_hour` and their day sums to `camera_day` (same transaction;
    controller/catalog/daily.py)."""
    add_hours_and_days(conn, ("camera_hour", "camera_day"), ("camera_id", "hour_us"), deltas)


_NEIGHBOUR_COLS = (
    col(Segment.segment_id),
    col(Segment.start_us),
    col(Segment.end_us),
    col(Segment.sha256),
    col(Segment.prev_sha256),
)
_CAM, _START = col(Segment.camera_id), col(Segment.start_us)
# Built once (the expression building cost more than the query, per segment committed).
_BEFORE = (
    select(*_NEIGHBOUR_COLS)
    .where(_CAM == bindparam("camera"), _START < bindparam("start"))
    .order_by(_START.desc())
    .limit(1)
)
_AFTER = (
    select(*_NEIGHBOUR_COLS)
    .where(_CAM == bindparam("camera"), _START > bindparam("start"))
    .order_by(_START.asc())
    .limit(1)
)
_SPAN = (
    select(*_NEIGHBOUR_COLS)
    .where(_CAM == bindparam("camera"), _START >= bindparam("lo"), _START <= bindparam("hi"))
    .order_by(_START.asc())
)


def _chain(conn: Connection, camera_id: str, rows: Sequence[SegmentRow]) -> list[Any]:
    """The camera's segments in start order from the one before the first of `rows` to the
    one after the last (`rows` are inserted already): 2 queries for one row, 3 for more."""
    lo = min(r.start_us for r in rows)
    hi = max(r.start_us for r in rows)
    before = conn.execute(_BEFORE, {"camera": camera_id, "start": lo}).first()
    if len(rows) == 1:
        middle: list[Any] = [rows[0].model_dump()]
    else:
        span = conn.execute(_SPAN, {"camera": camera_id, "lo": lo, "hi": hi})
        middle = [r._mapping for r in span]
    after = conn.execute(_AFTER, {"camera": camera_id, "start": hi}).first()
    ends: list[Any] = [before._mapping] if before is not None else []
    return ends + middle + ([after._mapping] if after is not None else [])


def rollup_segments(
    conn: Connection,
    rows: Sequence[SegmentRow],
    committed_us: int,
    media: Sequence[SegmentMediaRow] = (),
) -> None:
    """Account for `rows`, just inserted on `conn` (same transaction): durations, delays,
    picture heights, and the gaps each closes with its neighbours: every pair of neighbouring
    segments with at least one of them in `rows` is looked at once (see the module doc)."""
    deltas = segment_deltas(rows, committed_us)
    starts = {r.segment_id: r for r in rows}
    for m in media:
        row = starts.get(m.segment_id)
        if row is not None and m.height > 0:
            counter = deltas.setdefault(
                (row.camera_id, hour_of(row.start_us)), collections.Counter()
            )
            counter["video_height"] = max(counter["video_height"], m.height)
    per_camera: dict[str, list[SegmentRow]] = {}
    for r in rows:
        per_camera.setdefault(r.camera_id, []).append(r)
    for camera_id, mine in per_camera.items():
        chain = _chain(conn, camera_id, mine)
        for a, b in itertools.pairwise(chain):
            if a["segment_id"] in starts or b["segment_id"] in starts:
                gap = gap_between(a, b)
                if gap is not None:
                    add_span(deltas, camera_id, *gap, "gap_us")
    apply_deltas(conn, deltas)
