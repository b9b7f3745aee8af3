"""Pure KPI arithmetic: state timelines, rates, percentiles from histograms, loss tallies.

Timelines: a subject (device, camera, picture) is in the state of its latest transition; the
state it was in when a period began is that of its last transition before it. Before its first
transition a subject's state is unknown and counts as neither online nor faulty. A repeated
state (a restarted controller writes every device "online" again) changes nothing, so a
controller restart in the middle of a period leaves every figure as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

US = 1_000_000
DAY_US = 86_400 * US
IMAGE_FAULTS = frozenset({"frozen", "black", "blurred", "occluded", "fault"})


@dataclass(frozen=True, slots=True)
class Change:
    at_us: int
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Span:
    start_us: int
    end_us: int
    state: str
    reason: str = ""


def timeline(changes: Sequence[Change], start_us: int, end_us: int) -> list[Span]:
    """The subject's states over [start_us, end_us) from its transitions (time-ordered; may
    include ones before `start_us`). Time before the first transition is omitted; a
    transition to the state already in force is no change (its reason is not kept)."""
    spans: list[Span] = []
    current: Change | None = None
    for ch in changes:
        if ch.at_us >= end_us:
            break
        if current is not None and ch.state == current.state:
            continue
        if current is not None:
            lo = max(current.at_us, start_us)
            if ch.at_us > lo:
                spans.append(Span(lo, ch.at_us, current.state, current.reason))
        current = ch
    if current is not None:
        lo = max(current.at_us, start_us)
        if end_us > lo:
            spans.append(Span(lo, end_us, current.state, current.reason))
    return spans


def merge(spans: Sequence[Span]) -> list[Span]:
    """Adjacent spans of the same state joined (reasons of the first kept)."""
    out: list[Span] = []
    for s in spans:
        if out and out[-1].state == s.state and out[-1].end_us == s.start_us:
            out[-1] = Span(out[-1].start_us, s.end_us, s.state, out[-1].reason)
        else:
            out.append(s)
    return out


def time_in(spans: Iterable[Span], states: Iterable[str]) -> int:
    wanted = frozenset(states)
    return sum(s.end_us - s.start_us for s in spans if s.state in wanted)


def overlap(a: Sequence[Span], b: Sequence[Span]) -> int:
    """Microseconds both span lists cover (each list non-overlapping, time-ordered)."""
    total, i, j = 0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start_us, b[j].start_us), min(a[i].end_us, b[j].end_us)
        if hi > lo:
            total += hi - lo
        if a[i].end_us < b[j].end_us:
            i += 1
        else:
            j += 1
    return total


def per_day(spans: Iterable[Span], states: Iterable[str], start_us: int, days: int) -> list[int]:
    """Microseconds in `states` per day of the period (day i: start + i days)."""
    wanted, out = frozenset(states), [0] * days
    for s in spans:
        if s.state not in wanted:
            continue
        t = s.start_us
        while t < s.end_us:
            day = (t - start_us) // DAY_US
            stop = min(s.end_us, start_us + (day + 1) * DAY_US)
            if 0 <= day < days:
                out[day] += stop - t
            t = stop
    return out


def ratio(part: float, whole: float) -> float | None:
    """part ÷ whole, None when there is nothing to divide by."""
    return part / whole if whole > 0 else None


def percentile_from_histogram(
    counts: Sequence[int], bounds_s: Sequence[float], q: float
) -> float | None:
    """The q-quantile (0..1) of a histogram whose bucket i holds values ≤ bounds_s[i] (the
    last bucket, one past the bounds, is open): the upper bound of the bucket holding the
    ⌈q·n⌉-th value, so the answer is "at most this" (inf for the open bucket)."""
    n = sum(counts)
    if n == 0:
        return None
    rank = max(1, -(-int(q * n * 1_000_000) // 1_000_000))
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank:
            return float(bounds_s[i]) if i < len(bounds_s) else float("inf")
    return float("inf")


def alert_clear_times(changes: Sequence[tuple[str, Change]]) -> tuple[int, list[int]]:
    """(alerts raised, seconds to clear of those cleared) from (key, change) pairs in time
    order, states raised/cleared."""
    open_at: dict[str, int] = {}
    raised, cleared = 0, []
    for key, ch in changes:
        if ch.state == "raised" and key not in open_at:
            open_at[key] = ch.at_us
            raised += 1
        elif ch.state == "cleared" and key in open_at:
            cleared.append((ch.at_us - open_at.pop(key)) // US)
    return raised, cleared


def add_into(into: dict[str, int], more: Mapping[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v
