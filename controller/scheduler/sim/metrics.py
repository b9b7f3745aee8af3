"""What one simulation run measured, and Jain's fairness index (plain data, pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Evidence:
    request_id: int
    device_id: str
    arrived_s: float
    size_bytes: int
    deadline_s: float
    ideal_s: float = 0.0
    done_s: float | None = None


@dataclass(slots=True)
class SimResult:
    """Raw measurements of one run; `summary()` turns them into the report."""

    duration_s: float
    replan_ms: list[float] = field(default_factory=list)
    evidence: dict[int, Evidence] = field(default_factory=dict)
    busy_bits: dict[int, float] = field(default_factory=dict)  # per link, while saturated
    busy_capacity: dict[int, float] = field(default_factory=dict)
    busy_time: dict[int, float] = field(default_factory=dict)
    peak_utilisation: float = 0.0
    sent_bytes: float = 0.0
    evicted_bytes: float = 0.0
    evicted_chunks: int = 0
    jain: list[float] = field(default_factory=list)


def jain(xs: Iterable[float]) -> float:
    """Jain's fairness index: 1.0 when all equal, 1/n when one takes everything."""
    values = list(xs)
    total = sum(values)
    squares = sum(x * x for x in values)
    return 1.0 if squares == 0 else total * total / (len(values) * squares)
