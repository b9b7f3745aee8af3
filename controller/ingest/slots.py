"""Upload slots: the concurrent-upload limit, per-device shares, one stream per segment,
and idle reaping.

A flood of uploads beyond the limit is refused at once with RESOURCE_EXHAUSTED instead of
queueing on threads, so the server's handler pool always has room for QueryOffset and other
services. Each device gets a fair share of the pool (fairness.py decides), so one device
holding stalled streams cannot refuse another's uploads. A stream that stops sending (a dead
link the kernel has not noticed, or a client that holds a slot on purpose) is cancelled by
`reap_idle`: after the idle timeout, or after the shorter stall time while the pool is short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from controller.clock import Clock
from controller.ingest.fairness import Shares, Stream, admit, to_reap, under_pressure
from controller.ingest.rules import Code, IngestError

# A refusal makes the next reaping pass treat the pool as short for this long.
PRESSURE_MEMORY_S = 60.0


@dataclass(slots=True)
class _Active:
    device_id: str
    last: float
    cancel: Callable[[], object] | None


class UploadSlots:
    """`limit`: the pool; `shares` the per-device limits (default: only the pool applies
    per device too, as before shares existed, with no reserve)."""

    def __init__(self, limit: int, clock: Clock, shares: Shares | None = None) -> None:
        self._shares = shares or Shares(pool=limit, per_device=limit, reserve=0)
        self._limit = self._shares.pool
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[int, _Active] = {}
        self._per_device: dict[str, int] = {}
        self._segments: set[tuple[str, str]] = set()
        self._next = 0
        self._refused_at: float | None = None

    @property
    def shares(self) -> Shares:
        return self._shares

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._uploads)

    def in_flight(self, device_id: str) -> int:
        with self._lock:
            return self._per_device.get(device_id, 0)

    @contextmanager
    def upload(
        self, on_cancel: Callable[[], object] | None = None, device_id: str = ""
    ) -> Iterator[Callable[[], None]]:
        """Hold one upload slot of `device_id`; yields `touch()`, to be called whenever data
        arrives. RESOURCE_EXHAUSTED when the pool or the device's share is used up."""
        entry = _Active(device_id, self._clock.monotonic(), on_cancel)
        with self._lock:
            refusal = admit(self._shares, device_id, self._per_device)
            if refusal is None:
                self._next += 1
                token = self._next
                self._uploads[token] = entry
                self._per_device[device_id] = self._per_device.get(device_id, 0) + 1
            elif refusal.pool_short:
                self._refused_at = entry.last
        if refusal is not None:
            if refusal.pool_short:
                # Free the pool of stalled streams now, so the caller's retry finds a slot.
                self.reap_idle(self._shares.stall_s)
            raise IngestError(Code.RESOURCE_EXHAUSTED, refusal.reason)

        def touch() -> None:
            entry.last = self._clock.monotonic()

        try:
            yield touch
        finally:
            with self._lock:
                del self._uploads[token]
                left = self._per_device[device_id] - 1
                if left:
                    self._per_device[device_id] = left
                else:
                    del self._per_device[device_id]

    @contextmanager
    def segment(self, device_id: str, segment_id: str) -> Iterator[None]:
        """Claim a segment for this stream; ABORTED if another stream is uploading it."""
        key = (device_id, segment_id)
        with self._lock:
            if key in self._segments:
                raise IngestError(
                    Code.ABORTED,
                    f"segment {segment_id} is being uploaded by another stream; retry later",
                )
            self._segments.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._segments.discard(key)

    def is_active(self, device_id: str, segment_id: str) -> bool:
        with self._lock:
            return (device_id, segment_id) in self._segments

    def reap_idle(self, idle_s: float) -> int:
        """Cancel streams that received nothing for `idle_s` seconds (or for the shares'
        stall time while the pool is short); returns how many."""
        now = self._clock.monotonic()
        with self._lock:
            recent = self._refused_at is not None and now - self._refused_at < PRESSURE_MEMORY_S
            pressure = under_pressure(self._shares, len(self._uploads), recent)
            streams = [Stream(t, a.device_id, now - a.last) for t, a in self._uploads.items()]
            stale = [self._uploads[t] for t in to_reap(self._shares, streams, idle_s, pressure)]
            for entry in stale:
                entry.last = now  # cancel once per idle period
        cancels = [a.cancel for a in stale if a.cancel is not None]
        for cancel in cancels:
            cancel()
        return len(cancels)
