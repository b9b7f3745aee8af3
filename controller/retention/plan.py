"""Cloud retention decisions, as pure functions over plain data (no database, no store).

The rules:

- A camera's cloud copies are kept `retention_days` (its policy; 30 days by default). A
  segment expires when it ENDS at or before `now - retention_days`: a segment straddling the
  cutoff is still partly inside the window and is kept.
- A segment that overlaps an active hold on its camera ([start, end) ranges, half-open) is
  kept, however old, until every hold covering it is released.
- The newest segment of each camera is never deleted, even when expired: it anchors the hash
  chain, so when a camera that stopped uploading comes back, ingest can still check the next
  segment's `prev_sha256` against it instead of seeing a false chain break. It costs one
  segment per camera.
- Segments from the future (clock skew on an NVR) never expire early: expiry is measured
  from their end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US
DEFAULT_RETENTION_DAYS = 30


class SpanLike(Protocol):
    """What the planner needs of a segment (SegmentRow satisfies it)."""

    @property
    def segment_id(self) -> str: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def start_us(self) -> int: ...
    @property
    def end_us(self) -> int: ...


class HoldLike(Protocol):
    """What the planner needs of a hold (HoldRow satisfies it)."""

    @property
    def camera_id(self) -> str: ...
    @property
    def start_us(self) -> int: ...
    @property
    def end_us(self) -> int: ...
    @property
    def released_at_us(self) -> int | None: ...


@dataclass(frozen=True)
class RetentionPlan:
    """What to delete, and which expired segments are kept and why."""

    delete: tuple[str, ...]
    held: tuple[str, ...]  # expired, kept because an active hold covers them
    anchors: tuple[str, ...]  # expired, kept as the newest segment of their camera


def check_retention_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"retention of {days!r} days is not a positive whole number of days")
    return days


def cutoff_us(now_us: int, retention_days: int) -> int:
    """Segments ending at or before this instant have outlived the policy."""
    return now_us - check_retention_days(retention_days) * DAY_US


def overlaps(start_us: int, end_us: int, other_start_us: int, other_end_us: int) -> bool:
    """Half-open ranges [start, end) intersect. A zero-length segment at t counts as [t, t]."""
    if start_us == end_us:
        return other_start_us <= start_us < other_end_us
    return start_us < other_end_us and other_start_us < end_us


def is_held(segment: SpanLike, holds: Iterable[HoldLike]) -> bool:
    """Does any active hold on the segment's camera overlap it?"""
    return any(
        h.released_at_us is None
        and h.camera_id == segment.camera_id
        and overlaps(segment.start_us, segment.end_us, h.start_us, h.end_us)
        for h in holds
    )


def newest_per_camera(segments: Iterable[SpanLike]) -> dict[str, str]:
    """camera_id -> id of its latest segment (by start, then id, as the catalog orders)."""
    newest: dict[str, tuple[int, str]] = {}
    for s in segments:
        key = (s.start_us, s.segment_id)
        if s.camera_id not in newest or key > newest[s.camera_id]:
            newest[s.camera_id] = key
    return {camera: key[1] for camera, key in newest.items()}


def plan_retention(
    segments: Sequence[SpanLike],
    policies: Mapping[str, int],
    holds: Sequence[HoldLike],
    now_us: int,
    default_days: int = DEFAULT_RETENTION_DAYS,
) -> RetentionPlan:
    """Decide which of `segments` to delete now (see the module docstring for the rules).

    `policies` maps camera_id -> retention days (cameras not in it get `default_days`).
    `segments` must include each camera's newest segment for the anchor rule to hold; the
    sweep passes it along with every page of candidates.
    """
    check_retention_days(default_days)
    newest = newest_per_camera(segments)
    holds_by_camera: dict[str, list[HoldLike]] = {}
    for h in holds:
        if h.released_at_us is None:
            holds_by_camera.setdefault(h.camera_id, []).append(h)
    delete: list[str] = []
    held: list[str] = []
    anchors: list[str] = []
    seen: set[str] = set()
    for s in sorted(segments, key=lambda s: (s.start_us, s.segment_id)):
        if s.segment_id in seen:
            continue
        seen.add(s.segment_id)
        days = policies.get(s.camera_id, default_days)
        if s.end_us > cutoff_us(now_us, days):
            continue
        if is_held(s, holds_by_camera.get(s.camera_id, ())):
            held.append(s.segment_id)
        elif newest.get(s.camera_id) == s.segment_id:
            anchors.append(s.segment_id)
        else:
            delete.append(s.segment_id)
    return RetentionPlan(delete=tuple(delete), held=tuple(held), anchors=tuple(anchors))


def key_hour_us(key: str) -> int | None:
    """The UTC hour a segment key is filed under (`.../YYYY/MM/DD/HH/name`), or None."""
    parts = key.split("/")
    if len(parts) < 5:
        return None
    try:
        year, month, day, hour = (int(p) for p in parts[-5:-1])
        at = datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None
    return int(at.timestamp()) * SECOND_US


def orphan_deletable(
    key: str, camera_id: str, retention_days: int, holds: Sequence[HoldLike], now_us: int
) -> bool:
    """May an object with no catalog row be deleted? Only when everything it can hold is
    past the camera's retention and no active hold touches it: an orphan from a crashed
    ingest is then garbage, while anything recent (an ingest still in flight) or wanted by
    a case is left alone. A segment starts in the hour it is filed under and lasts less than
    an hour, so its span lies within that hour and the next."""
    hour = key_hour_us(key)
    if hour is None:
        return False
    span_end = hour + 2 * HOUR_US
    if span_end > cutoff_us(now_us, retention_days):
        return False
    return not any(
        h.released_at_us is None
        and h.camera_id == camera_id
        and overlaps(hour, span_end, h.start_us, h.end_us)
        for h in holds
    )
