"""Which segments to delete when the buffer is over its byte quota: a pure decision.

The policy, in order of preference:

1. segments already uploaded (the cloud has them), oldest first;
2. then segments not yet uploaded, oldest first — each such eviction is a loss that the
   buffer records and the health reporter reports, never a silent drop;
3. never a segment that overlaps a hold (evidence pinned for a case), and never one the caller
   asks to keep (the segment being committed right now).

The plan evicts the shortest prefix of that order that brings the buffer within quota. When
even evicting every candidate is not enough (everything left is held or kept), the plan says by
how much it falls short instead of touching held data; the buffer then stays over quota and
reports it. Kept here, free of I/O, so the order is proven by unit and property tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge_agent.model import Hold, SegmentInfo, SegmentState


@dataclass(frozen=True, slots=True)
class EvictionPlan:
    """The outcome of planning: what to delete, and what is still over quota afterwards."""

    evict_ids: tuple[str, ...]
    freed_bytes: int
    shortfall_bytes: int  # > 0 only when the remaining segments are all held or kept


def overlaps(start_us: int, end_us: int, range_start_us: int, range_end_us: int) -> bool:
    """Whether [start_us, end_us) meets [range_start_us, range_end_us).

    A zero-length segment counts as the instant at its start, so it is still covered by a hold
    around it (a one-frame segment cut short by a disconnect is evidence too).
    """
    effective_end = max(end_us, start_us + 1)
    return start_us < range_end_us and effective_end > range_start_us


def is_held(segment: SegmentInfo, holds: Iterable[Hold]) -> bool:
    """Whether any hold of the segment's camera overlaps it."""
    return any(
        h.camera_id == segment.camera_id
        and overlaps(segment.start_us, segment.end_us, h.start_us, h.end_us)
        for h in holds
    )


def eviction_key(segment: SegmentInfo) -> tuple[int, int, str, str]:
    """Sort key of the eviction order: uploaded before unsent, then oldest, then a stable tie."""
    unsent = 0 if segment.state is SegmentState.UPLOADED else 1
    return (unsent, segment.start_us, segment.camera_id, segment.segment_id)


def plan_eviction(
    segments: Sequence[SegmentInfo],
    holds: Sequence[Hold],
    used_bytes: int,
    quota_bytes: int,
    keep: frozenset[str] = frozenset(),
) -> EvictionPlan:
    """Plan the evictions that bring `used_bytes` down to `quota_bytes`.

    `segments` may be the whole buffer or any prefix of it in `eviction_key` order (the buffer
    pages through its index that way); they are sorted here anyway so the result never depends
    on the caller's order.
    """
    if used_bytes < 0 or quota_bytes < 0:
        raise ValueError(f"byte counts must be >= 0, got used={used_bytes} quota={quota_bytes}")
    excess = used_bytes - quota_bytes
    if excess <= 0:
        return EvictionPlan(evict_ids=(), freed_bytes=0, shortfall_bytes=0)
    chosen: list[str] = []
    freed = 0
    for segment in sorted(segments, key=eviction_key):
        if freed >= excess:
            break
        if segment.segment_id in keep or is_held(segment, holds):
            continue
        chosen.append(segment.segment_id)
        freed += segment.size_bytes
    return EvictionPlan(
        evict_ids=tuple(chosen), freed_bytes=freed, shortfall_bytes=max(0, excess - freed)
    )
