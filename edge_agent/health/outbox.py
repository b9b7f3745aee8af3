"""A bounded queue of events made while the broker was unreachable.

A village uplink can be down for days; an unbounded queue would eat the NVR's memory. The
oldest event is dropped first (the newest say most about the device now) and every drop is
counted, so after reconnecting the agent can report "N events dropped" instead of losing them
silently.
"""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    """Not thread-safe on its own: the reporter holds its lock around every call."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("outbox capacity must be at least 1")
        self._items: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self.dropped_unreported = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T) -> None:
        if len(self._items) >= self._capacity:
            self._items.popleft()
            self.dropped_unreported += 1
            self.dropped_total += 1
        self._items.append(item)

    def drain(self) -> list[T]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        items = list(self._items)
        self._items.clear()
        return items

    def take_dropped(self) -> int:
        """Drops not yet reported; resets the count (the total stays)."""
        n, self.dropped_unreported = self.dropped_unreported, 0
        return n
