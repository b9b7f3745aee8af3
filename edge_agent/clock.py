"""The agent's clock: the shared Clock, SystemClock and ManualClock (vigil_common/clock.py),
a clock shifted by a fixed amount, and the estimate of the agent's clock against the
controller's.

The agent's notion of time is injected everywhere so tests can drive it.

Wall-clock time (UTC microseconds) stamps segments; monotonic time measures intervals and
timeouts. Both come from one object passed in from `main`, never read from a global.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from vigil_common.clock import Clock, ManualClock, SystemClock

__all__ = [
    "Clock",
    "ClockOffset",
    "ClockSample",
    "ManualClock",
    "ShiftedClock",
    "SkewEstimate",
    "SystemClock",
    "estimate_skew",
    "usable_sample",
]


class ShiftedClock:
    """Another clock's wall time shifted by a fixed amount (an NVR whose clock is off);
    monotonic time is unchanged. Tests skew the agent with it."""

    def __init__(self, inner: Clock, shift_us: int) -> None:
        self._inner = inner
        self._shift_us = shift_us

    def now_us(self) -> int:
        return self._inner.now_us() + self._shift_us

    def monotonic(self) -> float:
        return self._inner.monotonic()


# ---- the agent's clock against the controller's -----------------------------------------
#
# Segments are stamped with the agent's wall clock, and an NVR's clock drifts or is set by
# hand (8 h off when set to local time as UTC). The agent measures its clock against the
# controller's from RPCs that carry the controller's time (InventoryAck.server_unix_us), the
# way NTP does: the controller read its clock somewhere between our send and our receive, so
#
#     skew  = (t_send + t_recv) / 2 - server      (agent minus controller; > 0: agent ahead)
#     error = (t_recv - t_send) / 2               (the true skew is within skew ± error)
#
# Of the recent samples the one with the shortest round trip is the best (NTP's clock
# filter); a sample from before the agent's clock was stepped (wall minus monotonic moved)
# says nothing about the clock now and is dropped.

DEFAULT_SKEW_THRESHOLD_S = 2.0
SAMPLES_KEPT = 16
SAMPLE_MAX_AGE_S = 900.0  # older samples do not describe a drifting clock any more
STEP_US = 500_000  # wall minus monotonic moving by this much means the clock was stepped


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One RPC: the agent's wall times around it, the controller's time in its answer, and the
    agent's monotonic time at receipt."""

    t_send_us: int
    t_recv_us: int
    server_us: int
    mono_s: float

    @property
    def skew_us(self) -> int:
        return (self.t_send_us + self.t_recv_us) // 2 - self.server_us

    @property
    def error_us(self) -> int:
        return max(0, self.t_recv_us - self.t_send_us) // 2

    @property
    def epoch_us(self) -> int:
        """Wall minus monotonic time: constant unless the wall clock was stepped."""
        return self.t_recv_us - int(self.mono_s * 1_000_000)


@dataclass(frozen=True, slots=True)
class SkewEstimate:
    """The agent's clock minus the controller's, within ± error_us."""

    skew_us: int
    error_us: int
    samples: int

    def beyond(self, threshold_s: float) -> bool:
        """True when the clock is off by more than the threshold even at the edge of the
        error bound (a slow link cannot make a good clock look bad)."""
        return abs(self.skew_us) - self.error_us > threshold_s * 1_000_000


def usable_sample(s: ClockSample) -> bool:
    """A sample that can be true: the answer came after the request, the controller's time is
    a plausible epoch time."""
    return s.t_recv_us >= s.t_send_us and s.server_us > 0


def estimate_skew(
    samples: Sequence[ClockSample], now_mono_s: float, max_age_s: float = SAMPLE_MAX_AGE_S
) -> SkewEstimate | None:
    """The best estimate from `samples` (oldest first); None when none is usable."""
    fresh = [s for s in samples if usable_sample(s) and now_mono_s - s.mono_s <= max_age_s]
    if not fresh:
        return None
    newest = fresh[-1]
    same_clock = [s for s in fresh if abs(s.epoch_us - newest.epoch_us) <= STEP_US]
    best = min(same_clock, key=lambda s: (s.error_us, -s.mono_s))
    return SkewEstimate(best.skew_us, best.error_us, len(same_clock))


class ClockOffset:
    """Thread-safe holder of recent samples: RPC clients `observe`, the health reporter and
    the buffer read `estimate` / `skewed` (the buffer flags segments committed while it is)."""

    def __init__(
        self,
        clock: Clock,
        threshold_s: float = DEFAULT_SKEW_THRESHOLD_S,
        max_age_s: float = SAMPLE_MAX_AGE_S,
    ) -> None:
        self._clock = clock
        self.threshold_s = threshold_s
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._samples: deque[ClockSample] = deque(maxlen=SAMPLES_KEPT)

    def observe(self, t_send_us: int, t_recv_us: int, server_us: int) -> None:
        """Record one RPC whose answer carried the controller's time `server_us`."""
        sample = ClockSample(t_send_us, t_recv_us, server_us, self._clock.monotonic())
        if not usable_sample(sample):
            return
        with self._lock:
            self._samples.append(sample)

    def estimate(self) -> SkewEstimate | None:
        with self._lock:
            samples = list(self._samples)
        return estimate_skew(samples, self._clock.monotonic(), self._max_age_s)

    def skewed(self) -> bool:
        """Whether the agent's clock is now off by more than the threshold (unknown: no)."""
        est = self.estimate()
        return est is not None and est.beyond(self.threshold_s)
