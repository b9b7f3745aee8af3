"""The H.264 rendition cache: converts a segment on first request, keeps the result on local
disk (LRU, bounded in bytes) and runs at most N conversions at once.

One conversion serves every viewer: the cache is keyed by the segment's SHA-256 and preset,
a second request for a segment being converted waits for that conversion instead of starting
another, and a request that finds every slot busy waits briefly (`wait_s`) and is then
refused with `RenditionBusy` (the HTTP layer answers 503 with Retry-After). A segment that
cannot be converted raises `TranscodeError` and is remembered for `failure_ttl_s`, so a
player retrying a corrupt segment does not burn a core each time. The decisions themselves
(admit, evict) are pure functions in decisions.py.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from controller.media.decisions import (
    Admission,
    CacheEntry,
    admit,
    choose_evictions,
    default_concurrency,
    retry_after_s,
)
from controller.media.transcode import TranscodeError, TranscodeStats, transcode_h264

log = logging.getLogger("vigil.renditions")

Converter = Callable[[Path, Path, str], TranscodeStats]
SUFFIX = ".ts"
JOIN_WAIT_S = 60.0  # a conversion in progress finishes; joiners wait for it this long


class RenditionBusy(Exception):
    """Every conversion slot stayed busy for the whole wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(slots=True)
class RenditionCounters:
    hits: int = 0
    conversions: int = 0
    failures: int = 0
    refused: int = 0
    cpu_ms: float = 0.0
    frames: int = 0


class RenditionCache:
    """Thread-safe. `open(key, fetch)` returns an open file of the rendition; `fetch(path)`
    writes the original segment's bytes to `path` when a conversion is needed."""

    def __init__(
        self,
        cache_dir: Path,
        max_bytes: int,
        max_concurrent: int,
        wait_s: float,
        preset: str = "ultrafast",
        convert: Converter = transcode_h264,
        failure_ttl_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.dir = cache_dir
        self.tmp = cache_dir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # conversions cut short by a crash
            leftover.unlink(missing_ok=True)
        self.max_bytes = max_bytes
        self.limit = max_concurrent
        self.wait_s = wait_s
        self.preset = preset
        self._convert = convert
        self._failure_ttl_s = failure_ttl_s
        self._mono = monotonic
        self._cond = threading.Condition()
        self._active = 0
        self._inflight: set[str] = set()
        self._failed: dict[str, tuple[str, float]] = {}
        self._last_wall_s = 1.0
        self.counters = RenditionCounters()

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.{self.preset}{SUFFIX}"

    def _open_cached(self, path: Path) -> BinaryIO | None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        try:
            os.utime(path)  # last use, for LRU
        except OSError:
            pass
        return handle

    def _failure(self, key: str) -> str | None:
        failed = self._failed.get(key)
        if failed is None:
            return None
        if self._mono() - failed[1] >= self._failure_ttl_s:
            del self._failed[key]
            return None
        return failed[0]

    def open(self, key: str, fetch: Callable[[Path], None]) -> BinaryIO:
        """The rendition of segment `key` (its SHA-256), converted now if needed."""
        if not key or not key.isalnum():
            raise ValueError("rendition key must be alphanumeric (a SHA-256 hex)")
        path = self._path(key)
        now = self._mono()
        wait_until, join_until = now + self.wait_s, now + max(self.wait_s, JOIN_WAIT_S)
        with self._cond:
            while True:
                failed = self._failure(key)
                if failed is not None:
                    raise TranscodeError(failed)
                busy = key in self._inflight
                handle = None if busy else self._open_cached(path)
                decision = admit(handle is not None, busy, self._active, self.limit)
                if decision is Admission.SERVE:
                    assert handle is not None
                    self.counters.hits += 1
                    return handle
                if decision is Admission.START:
                    self._inflight.add(key)
                    self._active += 1
                    break
                until = join_until if decision is Admission.JOIN else wait_until
                remaining = until - self._mono()
                if remaining <= 0:
                    self.counters.refused += 1
                    raise RenditionBusy(
                        f"all {self.limit} conversion slots are busy: retry shortly",
                        retry_after_s(self.wait_s, self._last_wall_s),
                    )
                self._cond.wait(remaining)
        return self._run(key, path, fetch)

    def _run(self, key: str, path: Path, fetch: Callable[[Path], None]) -> BinaryIO:
        tag = uuid.uuid4().hex[:12]
        src, out = self.tmp / f"{key}.{tag}.src", self.tmp / f"{key}.{tag}{SUFFIX}"
        try:
            fetch(src)
            stats = self._convert(src, out, self.preset)
            os.replace(out, path)
            handle = path.open("rb")
        except TranscodeError as exc:
            with self._cond:
                self._failed[key] = (str(exc), self._mono())
                if len(self._failed) > 1024:
                    self._failed.pop(next(iter(self._failed)))
                self.counters.failures += 1
            log.warning("segment %s: no H.264 rendition: %s", key[:16], exc)
            raise
        finally:
            src.unlink(missing_ok=True)
            out.unlink(missing_ok=True)
            with self._cond:
                self._inflight.discard(key)
                self._active -= 1
                self._cond.notify_all()
        with self._cond:
            self.counters.conversions += 1
            self.counters.cpu_ms += stats.cpu_ms
            self.counters.frames += stats.frames
            self._last_wall_s = stats.wall_ms / 1000
        log.info(
            "segment %s: H.264 rendition of %s, %d frames in %.0f ms CPU (%d bytes)",
            key[:16],
            stats.source_codec,
            stats.frames,
            stats.cpu_ms,
            stats.bytes_out,
        )
        self.evict()
        return handle

    def evict(self) -> list[str]:
        """Remove least recently used renditions until the cache fits its bound."""
        entries = []
        for item in os.scandir(self.dir):
            if item.is_file() and item.name.endswith(SUFFIX):
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                entries.append(CacheEntry(item.name, st.st_size, st.st_mtime))
        with self._cond:
            keep = {self._path(k).name for k in self._inflight}
        gone = choose_evictions(entries, self.max_bytes, keep)
        for name in gone:
            (self.dir / name).unlink(missing_ok=True)
        return gone

    def cached(self, key: str) -> bool:
        return self._path(key).exists()


def rendition_cache(
    enabled: bool,
    cache_dir: Path,
    cache_bytes: int,
    max_concurrent: int,
    wait_s: float,
    preset: str,
) -> RenditionCache | None:
    """The cache as `[transcode]` configures it (None when disabled); `max_concurrent` 0
    means half the CPUs, at least one."""
    if not enabled:
        return None
    return RenditionCache(
        cache_dir,
        cache_bytes,
        default_concurrency(os.cpu_count(), max_concurrent),
        wait_s,
        preset,
    )
