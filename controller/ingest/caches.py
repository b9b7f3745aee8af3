"""What ingest remembers between uploads, to spare the catalog a query on every segment.

Each segment costs a handful of catalog round trips, and on a 2-core controller every one of
them is Python holding the GIL that the gRPC threads need to receive the next bytes. Two of
them return the same answer almost every time:

- `CameraCache`: which device a camera belongs to (and its county/site for the key).
  Positive answers are kept for `ttl_s` (monotonic clock): a newly registered camera is
  seen at once, a camera moved to another device within `ttl_s`.
- `ChainTips`: the latest segment this controller committed for each camera. The next
  upload of a camera almost always starts after it, and then it *is* the previous segment
  and nothing can follow yet, so the two chain lookups are skipped. That holds only while
  this controller is the catalog's only segment writer (SQLite: one controller by design);
  the service does not use tips otherwise. Anything older (a late or out-of-order segment)
  goes to the catalog as before. Tips start empty, so a restart simply re-learns them.
- `ProbeMemo`: each camera's last media probe, keyed by the bytes that decide its result
  (media/ts_params.py: the program map, the parameter sets, the AAC header). A segment
  whose bytes are equal gets the same facts without PyAV (40 us instead of 0.7-1.3 ms of
  CPU); any difference, or a head those bytes cannot be read from, is probed. Every
  `reprobe_every`-th segment of a camera is probed anyway, to bound what a change outside
  those bytes (a frame rate not written in the SPS) could leave unseen.

All are thread-safe and bounded (least recently used entries go first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from controller.catalog import CameraRow
from controller.clock import Clock
from controller.ingest.rules import Neighbour
from controller.media.probe import MediaInfo
from controller.media.ts_params import stream_params

K = TypeVar("K")
V = TypeVar("V")

MAX_ENTRIES = 100_000  # cameras; a city has ~12,000


class _Lru(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)


class CameraCache:
    """Registered cameras, each trusted for `ttl_s` after it was read from the catalog."""

    def __init__(self, clock: Clock, ttl_s: float = 10.0, limit: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._items: _Lru[str, tuple[float, CameraRow]] = _Lru(limit)

    def get(self, camera_id: str) -> CameraRow | None:
        entry = self._items.get(camera_id)
        if entry is None:
            return None
        expires, camera = entry
        if self._clock.monotonic() >= expires:
            self._items.pop(camera_id)
            return None
        return camera

    def put(self, camera: CameraRow) -> None:
        self._items.put(camera.camera_id, (self._clock.monotonic() + self._ttl, camera))


class ChainTips:
    """The latest committed segment of each camera, as far as this controller knows."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self._items: _Lru[str, Neighbour] = _Lru(limit)
        self._lock = threading.Lock()

    def after_tip(self, camera_id: str, start_us: int) -> Neighbour | None:
        """The tip, if a segment starting at `start_us` comes after it (else None: ask)."""
        tip = self._items.get(camera_id)
        if tip is not None and start_us > tip.start_us:
            return tip
        return None

    def committed(self, camera_id: str, segment: Neighbour, is_latest: bool) -> None:
        """Record a committed segment; `is_latest`: nothing committed starts after it."""
        with self._lock:
            tip = self._items.get(camera_id)
            if tip is not None and tip.start_us >= segment.start_us:
                return
            if tip is not None or is_latest:
                self._items.put(camera_id, segment)


class ProbeMemo:
    """`probe(camera_id, head)`: `probe_bytes(head)`, or the camera's last result when the
    head's stream parameters are the same bytes (see the module doc)."""

    def __init__(
        self,
        probe_bytes: Callable[[bytes], MediaInfo],
        reprobe_every: int = 30,
        limit: int = MAX_ENTRIES,
    ) -> None:
        self._probe = probe_bytes
        self._every = reprobe_every
        self._items: _Lru[str, tuple[bytes, MediaInfo, int]] = _Lru(limit)

    def __call__(self, camera_id: str, head: bytes) -> MediaInfo:
        started = time.perf_counter_ns()
        params = stream_params(head)
        if params is not None:
            known = self._items.get(camera_id)
            if known is not None and known[0] == params and known[2] < self._every:
                self._items.put(camera_id, (params, known[1], known[2] + 1))
                return replace(known[1], probe_us=(time.perf_counter_ns() - started) // 1000)
        info = self._probe(head)
        if params is not None and info.ok:
            self._items.put(camera_id, (params, info, 1))
        else:
            self._items.pop(camera_id)
        return info
