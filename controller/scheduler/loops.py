"""The scheduler service's two threads, and when each runs its round.

- "scheduler" runs the plan round: on a wake-up (an input changed something) or every
  `tick_s`. Replans are coalesced here: after a replan, the next waits until `coalesce_s`
  or as long as that replan took (whichever is longer) has passed, so a burst of inputs is
  planned together, and planning takes at most half of this thread's time however large
  the fleet (a replan of 10,000 devices takes ~0.1-0.5 s on a loaded 2-core machine).
- "scheduler-upkeep" runs the database round every `tick_s` (the round itself decides
  whether it is due), apart from planning so that a slow database never delays a lease.

A round that raises is logged and retried at the next one: the threads never die of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controller.clock import Clock
from controller.scheduler.options import SchedulerOptions

log = logging.getLogger("vigil.scheduler")


class SchedulerLoops:
    """`plan_round`/`upkeep_round` on their threads; `last_replan()` gives (monotonic time
    the last replan started, how long it took)."""

    def __init__(
        self,
        options: SchedulerOptions,
        clock: Clock,
        plan_round: Callable[[], None],
        upkeep_round: Callable[[], None],
        last_replan: Callable[[], tuple[float, float]],
    ) -> None:
        self._options = options
        self._clock = clock
        self._plan_round = plan_round
        self._upkeep_round = upkeep_round
        self._last_replan = last_replan
        self._wake = threading.Event()
        self._upkeep_wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._plan_loop, name="scheduler", daemon=True),
            threading.Thread(target=self._upkeep_loop, name="scheduler-upkeep", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._upkeep_wake.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def wake(self) -> None:
        """Plan soon (an input changed something)."""
        self._wake.set()

    def wake_upkeep(self) -> None:
        """Read the database now (a footage request was made)."""
        self._upkeep_wake.set()

    def _plan_loop(self) -> None:
        opt = self._options
        while not self._stop.is_set():
            self._wake.wait(opt.tick_s)
            started, took = self._last_replan()
            gap = max(opt.coalesce_s, took) - (self._clock.monotonic() - started)
            if gap > 0:  # inputs arriving meanwhile wait for this replan together
                self._stop.wait(min(gap, opt.tick_s))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._plan_round()
            except Exception:
                log.exception("scheduler tick failed; will retry")

    def _upkeep_loop(self) -> None:
        opt = self._options
        while not self._stop.is_set():
            self._upkeep_wake.wait(min(opt.tick_s, opt.progress_interval_s))
            self._upkeep_wake.clear()
            if self._stop.is_set():
                return
            try:
                self._upkeep_round()
            except Exception:
                log.exception("scheduler upkeep round failed; will retry")
