"""`StoreAnswers`: when the object store last answered a request, and whether one failed since.

Why: the controller announces store health to its agents (grpcserver/store_health.py) by
probing the store every half second. While uploads flow, the store's own answers to them are
fresher evidence than that probe, and each probe (a boto3 HEAD) costs ~1.2 ms of CPU: at the
rates a loaded controller ingests, ~0.2 ms per MB. So the S3 store notes each answer here
and the health loop skips its probe while a request succeeded within the interval and none
failed after it; as soon as a request fails, or the traffic stops, it probes again.

"Answered" means what the probe means by it: the store replied with a success, a 404, or a
checksum verdict (it is up and judging). A timeout, a refused connection or an error status
is a failure. The times are monotonic seconds; assignments of floats need no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def answered_recently(
    ok_at: float | None, failed_at: float | None, now: float, within_s: float
) -> bool:
    """True when the last answer was a success less than `within_s` ago."""
    if ok_at is None or now - ok_at >= within_s:
        return False
    return failed_at is None or failed_at < ok_at


class StoreAnswers:
    """Noted by the store's request paths (any thread), read by the health loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ok_at: float | None = None
        self._failed_at: float | None = None

    def ok(self) -> None:
        self._ok_at = self._clock()

    def failed(self) -> None:
        self._failed_at = self._clock()

    def recent(self, within_s: float) -> bool:
        """Whether the store answered a request well within the last `within_s` seconds."""
        return answered_recently(self._ok_at, self._failed_at, self._clock(), within_s)
