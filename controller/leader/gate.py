"""`LeaderOnly`: a periodic job of the leader (the retention sweep) that a follower skips.

The question is asked at every run, not once at start: leadership moves between replicas
while they run, and the job runs on whichever replica leads at that moment. A run already
under way when the lease is lost finishes (the sweep is idempotent: a segment is deleted
once, whoever gets to it first, and a crash mid-sweep is finished by the next run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.leader import Leadership

log = logging.getLogger("vigil.leader")


class LeaderOnly:
    """`job()` when this replica leads, nothing otherwise; counts both for tests and logs."""

    def __init__(self, name: str, job: Callable[[], object], leadership: Leadership) -> None:
        self.name = name
        self._job = job
        self._leadership = leadership
        self.runs = 0
        self.skipped = 0

    def __call__(self) -> object:
        if not self._leadership.is_leader():
            self.skipped += 1
            log.debug("%s skipped: not the leader", self.name)
            return None
        self.runs += 1
        return self._job()

    def __repr__(self) -> str:
        return f"LeaderOnly({self.name!r})"


__all__ = ["LeaderOnly"]
