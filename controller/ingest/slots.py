"""Upload slots: the concurrent-upload limit, one stream per segment, and idle reaping.

A flood of uploads beyond the limit is refused at once with RESOURCE_EXHAUSTED instead of
queueing on threads, so the server's handler pool always has room for QueryOffset and other
services. A stream that stops sending (a dead link the kernel has not noticed, or a client
that holds a slot on purpose) is cancelled by `reap_idle`, so it cannot hold a slot forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from controller.clock import Clock
from controller.ingest.rules import Code, IngestError


@dataclass(slots=True)
class _Active:
    last: float
    cancel: Callable[[], object] | None


class UploadSlots:
    def __init__(self, limit: int, clock: Clock) -> None:
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._uploads: dict[int, _Active] = {}
        self._segments: set[tuple[str, str]] = set()
        self._next = 0

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._uploads)

    @contextmanager
    def upload(self, on_cancel: Callable[[], object] | None = None) -> Iterator[Callable[[], None]]:
        """Hold one upload slot; yields `touch()`, to be called whenever data arrives."""
        with self._lock:
            if len(self._uploads) >= self._limit:
                raise IngestError(
                    Code.RESOURCE_EXHAUSTED,
                    f"too many concurrent uploads (limit {self._limit}); retry later",
                )
            self._next += 1
            token = self._next
            entry = _Active(self._clock.monotonic(), on_cancel)
            self._uploads[token] = entry

        def touch() -> None:
            entry.last = self._clock.monotonic()

        try:
            yield touch
        finally:
            with self._lock:
                del self._uploads[token]

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
        """Cancel streams that received nothing for `idle_s` seconds; returns how many."""
        now = self._clock.monotonic()
        with self._lock:
            stale = [a for a in self._uploads.values() if now - a.last > idle_s]
            for entry in stale:
                entry.last = now  # cancel once per idle period
        cancels = [a.cancel for a in stale if a.cancel is not None]
        for cancel in cancels:
            cancel()
        return len(cancels)
