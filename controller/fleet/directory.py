"""Which devices the fleet view accepts: device id -> (county, site).

Only enrolled devices count (ARCHITECTURE: "Only enrolled devices talk to the controller");
the catalog's device registry implements DeviceSource in production.

The message path must never wait on the database (one read per message under the fleet lock
was the bottleneck of issue 12), so `CachedDirectory` keeps the whole registry in memory and
answers `lookup` from a dict. A background caller (the fleet's sync thread) calls `refresh()`
outside any fleet lock: a cheap version query (count and newest update) decides whether to
reload everything, and ids that missed since the last refresh are looked up one by one, at most
`miss_limit` of them and each at most once per `retry_s`, so a device that is not registered
(or a flood of made-up ids) costs nothing per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Protocol

__all__ = [
    "CachedDirectory",
    "DeviceDirectory",
    "DeviceSource",
    "StaticDirectory",
    "due_misses",
]

Place = tuple[str, str]


class DeviceDirectory(Protocol):
    """The registry of enrolled devices: device id -> (county, site), None when unknown."""

    def lookup(self, device_id: str) -> Place | None: ...


class DeviceSource(Protocol):
    """Where `CachedDirectory` loads the registry from (the catalog in production)."""

    def version(self) -> Hashable:
        """A cheap value that changes whenever a device is added, moved or removed."""
        ...

    def load(self) -> dict[str, Place]:
        """Every enrolled device."""
        ...

    def lookup(self, device_id: str) -> Place | None:
        """One device (for ids that missed the in-memory table)."""
        ...


class StaticDirectory:
    """An in-memory registry (tests, benchmark; the catalog provides the real one). It is
    also a DeviceSource, its version counting changes, for CachedDirectory tests."""

    def __init__(self, devices: dict[str, Place] | None = None) -> None:
        self._devices = dict(devices or {})
        self._changes = 0

    def add(self, device_id: str, county: str, site: str) -> None:
        self._devices[device_id] = (county, site)
        self._changes += 1

    def lookup(self, device_id: str) -> Place | None:
        return self._devices.get(device_id)

    def version(self) -> Hashable:
        return self._changes

    def load(self) -> dict[str, Place]:
        return dict(self._devices)


def due_misses(
    misses: Mapping[str, float], tried: Mapping[str, float], now: float, retry_s: float, limit: int
) -> list[str]:
    """Which missed ids to look up now: not tried within `retry_s`, oldest miss first, at most
    `limit` (pure: the rate limit of unknown-id lookups)."""
    due = [d for d, at in misses.items() if now - tried.get(d, float("-inf")) >= retry_s]
    due.sort(key=lambda d: (misses[d], d))
    return due[:limit]


class CachedDirectory:
    """The registry in memory: `lookup` never does I/O; `refresh()` (outside the fleet lock,
    every few seconds) reloads it when its version changed and retries recent misses.

    `now` is a monotonic clock in seconds (injected). Misses are remembered up to
    `misses_kept` ids (a flood of made-up ids cannot grow memory without bound).
    """

    def __init__(
        self,
        source: DeviceSource,
        now: Callable[[], float],
        retry_s: float = 5.0,
        miss_limit: int = 100,
        misses_kept: int = 10_000,
    ) -> None:
        self._source = source
        self._now = now
        self._retry_s = retry_s
        self._miss_limit = miss_limit
        self._misses_kept = misses_kept
        self._lock = threading.Lock()
        self._devices: dict[str, Place] = {}
        self._version: Hashable = None
        self._loaded = False
        self._misses: dict[str, float] = {}
        self._tried: dict[str, float] = {}
        self.reloads = 0
        self.miss_lookups = 0

    def lookup(self, device_id: str) -> Place | None:
        found = self._devices.get(device_id)  # a dict read: atomic under the GIL
        if found is None:
            with self._lock:
                if device_id not in self._misses and len(self._misses) < self._misses_kept:
                    self._misses[device_id] = self._now()
        return found

    def __len__(self) -> int:
        return len(self._devices)

    def refresh(self) -> None:
        """Reload on a version change (or the first call), then look up due misses."""
        version = self._source.version()
        if not self._loaded or version != self._version:
            devices = self._source.load()
            self._devices = devices  # swapped whole: readers see the old or the new table
            self._version = version
            self._loaded = True
            self.reloads += 1
        now = self._now()
        with self._lock:
            for d in [d for d in self._misses if d in self._devices]:
                del self._misses[d]
            due = due_misses(self._misses, self._tried, now, self._retry_s, self._miss_limit)
            for d in due:
                self._tried[d] = now
            # Forget retry marks older than the window: they no longer limit anything.
            self._tried = {d: t for d, t in self._tried.items() if now - t < self._retry_s}
        found: dict[str, Place] = {}
        for device_id in due:
            self.miss_lookups += 1
            place = self._source.lookup(device_id)
            if place is not None:
                found[device_id] = place
        with self._lock:
            for d in due:
                self._misses.pop(d, None)
            if found:
                self._devices = {**self._devices, **found}
