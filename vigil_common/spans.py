"""Half-open time spans [start, end) in microseconds: merge, subtract, clip, cover. Pure.

The agent (which footage of a hold it still has, edge_agent/leases/inventory.py) and the
controller (a job's progress, controller/jobs/progress.py) answer the same interval questions,
so both take them from here.
"""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]


def merge(spans: Iterable[Span], tolerance_us: int = 0) -> list[Span]:
    """Sorted, non-overlapping spans; spans closer than `tolerance_us` are joined."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1] + tolerance_us:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(spans: Iterable[Span], minus: Iterable[Span]) -> list[Span]:
    """The parts of `spans` not covered by `minus` (both any order; result merged)."""
    cut = merge(minus)
    out: list[Span] = []
    for start, end in merge(spans):
        pos = start
        for m_start, m_end in cut:
            if m_end <= pos or m_start >= end:
                continue
            if m_start > pos:
                out.append((pos, m_start))
            pos = max(pos, m_end)
            if pos >= end:
                break
        if pos < end:
            out.append((pos, end))
    return out


def clip(spans: Iterable[Span], lo: int, hi: int) -> list[Span]:
    """The parts of `spans` inside [lo, hi), in the order given."""
    return [(max(s, lo), min(e, hi)) for s, e in spans if e > lo and s < hi]


def covered(spans: Iterable[Span], lo: int, hi: int, tolerance_us: int = 0) -> bool:
    """Whether `spans` cover [lo, hi) (holes up to `tolerance_us` allowed)."""
    if hi <= lo:
        return True
    for start, end in merge(clip(spans, lo - tolerance_us, hi), tolerance_us):
        if start <= lo + tolerance_us and end >= hi:
            return True
    return False
