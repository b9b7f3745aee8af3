"""A one-slot mailbox between the scheduler and one agent's lease stream.

Every lease message carries the device's whole current state (lease and holds), so only
the newest matters: `put` replaces whatever was not sent yet. A slow or stalled stream can
therefore never make the controller queue without bound, and never receives stale leases.

The scheduler's threads `put`; the stream that sends is a coroutine on the gRPC event loop.
It registers a `watch` callback (which does `loop.call_soon_threadsafe(event.set)`) and takes
with `poll()`, so a waiting stream costs no thread and no timer: only a `put` or `close`
wakes it. `take(timeout)` remains for threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self._watch: Callable[[], object] | None = None
        self.replaced = 0  # messages overwritten before they were sent

    @property
    def closed(self) -> bool:
        return self._closed

    def watch(self, wake: Callable[[], object]) -> None:
        """Call `wake()` (from the putting thread, must not block) after every put and at
        close; at once if something is already waiting or the box is closed."""
        with self._cond:
            self._watch = wake
            pending = self._item is not None or self._closed
        if pending:
            wake()

    def put(self, item: T) -> None:
        with self._cond:
            if self._item is not None:
                self.replaced += 1
            self._item = item
            self._cond.notify_all()
            wake = self._watch
        if wake is not None:
            wake()

    def poll(self) -> T | None:
        """The newest unsent item without waiting; None if there is none or it is closed."""
        with self._cond:
            item, self._item = self._item, None
            return None if self._closed else item

    def take(self, timeout: float) -> T | None:
        """The newest unsent item, waiting up to `timeout` s; None on timeout or close."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            wake = self._watch
        if wake is not None:
            wake()
