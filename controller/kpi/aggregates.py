"""The report's three sums over the period (per camera, per camera and traffic class, per
day), read together: on PostgreSQL each on its own pooled connection in a thread, so the
server sums while this process reads the registry and the transitions.

Why: they are most of the report's database time (the per-class one hash-aggregates ~1.1 M
`class_day` rows for a month of the Longnan preset), and reading them one after the other
left the server idle while Python worked and Python idle while the server summed: 1-1.5 s of
a month report at load ~8 (bench/report.py). SQLite reads them in turn (one writer file, and
an in-memory database has one connection, which threads must not share).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from controller.catalog.daily import day_of
from controller.catalog.history import HistoryCatalog, HourSums

# What the daily table and chart read of the per-hour sums (report._daily).
DAILY_COLUMNS = ("recorded_us", "uploaded_us", "evicted_us", "gap_us")


@dataclass(frozen=True, slots=True)
class Sums:
    per_camera: list[HourSums]
    per_class: dict[str, dict[int, list[int]]]
    per_day: list[HourSums]


def per_day(
    history: HistoryCatalog, start_us: int, end_us: int, cams: Sequence[str] | None
) -> list[HourSums]:
    """Sums per hour, or per local day where the period's days are local days (it starts at
    a local midnight, as `--from 2026-11-01` does): each bucket then lies in one report day."""
    by = "bucket" if day_of(start_us) == start_us else "hour"
    return history.hour_sums(start_us, end_us, by, cams, DAILY_COLUMNS)


class PeriodSums:
    """`begin(cameras)` starts the three reads (in threads on PostgreSQL), `result()` waits
    for them; use as a context manager (the threads end with it)."""

    def __init__(self, history: HistoryCatalog, start_us: int, end_us: int) -> None:
        self._history, self._start, self._end = history, start_us, end_us
        concurrent = history.engine.dialect.name == "postgresql"
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="kpi-sums") if concurrent else None
        self._reads: list[Callable[[], Any]] = []

    def __enter__(self) -> PeriodSums:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def begin(self, cameras: Sequence[str] | None) -> None:
        h, a, b = self._history, self._start, self._end
        calls: list[Callable[[], Any]] = [
            lambda: h.hour_sums(a, b, "camera", cameras),
            lambda: h.class_sums(a, b, cameras),
            lambda: per_day(h, a, b, cameras),
        ]
        if self._pool is None:
            self._reads = calls
            return
        futures: list[Future[Any]] = [self._pool.submit(c) for c in calls]
        self._reads = [f.result for f in futures]

    def result(self) -> Sums:
        cams, classes, days = (read() for read in self._reads)
        return Sums(cams, classes, days)
