"""At most one log line per interval for a recurring event, with how many it stands for.

Why: a camera whose clock misbehaves can re-base its timestamps many times a second; one
INFO line each floods the agent's log (and journald) on a two-core NVR and costs more CPU than
the recording. The first occurrence is logged at once, later ones are counted and reported
with the next line due. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LogRate:
    """`note(now_us)` returns how many occurrences a line logged now stands for, or None."""

    interval_us: int = 60_000_000
    _last_us: int | None = None
    _pending: int = 0

    def note(self, now_us: int) -> int | None:
        self._pending += 1
        if self._last_us is not None and now_us - self._last_us < self.interval_us:
            return None
        count, self._pending, self._last_us = self._pending, 0, now_us
        return count
