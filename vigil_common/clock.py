"""Time, injected everywhere so tests can drive it.

Wall-clock time (UTC microseconds) stamps segments, grants and audit events; monotonic time
measures intervals and timeouts. Both come from one object built in `main` and passed in,
never read from a global. The agent and the controller each re-export these names from their
own `clock` module (edge_agent/clock.py adds the agent's skew estimate).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall-clock UTC time in microseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests advance by hand."""

    def __init__(self, now_us: int = 1_767_225_600_000_000) -> None:
        self._now_us = now_us
        self._mono = 0.0

    def now_us(self) -> int:
        return self._now_us

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now_us += int(seconds * 1_000_000)
        self._mono += seconds
