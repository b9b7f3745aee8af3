"""The uploader's job source under leases: only leased segments, in lease order, at the
leased rate.

`LeasedJobSource` holds the lease in force and what became of its segments. The uploader
asks it for the next job (`LeasedUploader.select_next`, the Uploader's seam); without a
usable lease (none yet, withdrawn, expired, or the stream to the controller lost) the
answer is "nothing": an agent in leased mode never uploads on its own. A new lease
replaces the old one at once (the segment in flight finishes), which is how evidence
overtakes backfill. When the last segment of a lease starts (or every one is done or
failed, or the lease expires), the source hands a `FinishedLease` to its listeners: the
lease client reports it at once, so the next lease arrives while that last segment is
still on the wire. Listeners must return quickly: they run under the uploader's lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_agent.clock import Clock
from edge_agent.leases.lease import AgentLease, next_segment
from edge_agent.model import AgentEvent, SegmentInfo
from edge_agent.uplink.ratelimit import TokenBucket
from edge_agent.uplink.uploader import Job, RetryPolicy, SegmentSender, Uploader

log = logging.getLogger(__name__)


class LeaseBuffer(Protocol):
    """What the source needs of edge_agent.store.SegmentBuffer (beyond the uploader's)."""

    def get(self, segment_id: str) -> SegmentInfo | None: ...

    def unsent(self, limit: int = 100, camera_id: str | None = None) -> list[SegmentInfo]: ...

    def path_of(self, info: SegmentInfo) -> Path: ...

    def mark_uploaded(self, segment_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class FinishedLease:
    lease_id: str
    done: tuple[str, ...]
    failed: tuple[str, ...]
    expired: bool  # True: ran out of time with work left (reported so it can be re-planned)


class LeasedJobSource:
    def __init__(
        self,
        buffer: LeaseBuffer,
        bucket: TokenBucket | None,
        clock: Clock,
        on_finished: Callable[[FinishedLease], None] | None = None,
    ) -> None:
        self._buffer = buffer
        self._bucket = bucket
        self._clock = clock
        self._listeners: list[Callable[[FinishedLease], None]] = []
        if on_finished is not None:
            self._listeners.append(on_finished)
        self._lock = threading.Lock()
        self._lease: AgentLease | None = None
        self._done: set[str] = set()
        self._failed: set[str] = set()
        self.leases_seen = 0

    def add_finished_listener(self, callback: Callable[[FinishedLease], None]) -> None:
        """Also call `callback` with every finished lease (the lease client reports them)."""
        with self._lock:
            self._listeners.append(callback)

    @property
    def lease(self) -> AgentLease | None:
        with self._lock:
            return self._lease

    def set_lease(self, lease: AgentLease | None) -> None:
        """The controller's current lease (None: stop uploading). The same lease id again
        (a holds update) keeps the progress made under it."""
        with self._lock:
            same = (
                lease is not None
                and self._lease is not None
                and lease.lease_id == self._lease.lease_id
            )
            if not same:
                self._done, self._failed = set(), set()
                if lease is not None:
                    self.leases_seen += 1
            self._lease = lease
        if lease is not None and lease.rate_bps > 0 and self._bucket is not None:
            self._bucket.set_rate(lease.rate_bps)

    def clear(self) -> None:
        """The lease stream is gone: the controller has voided our lease."""
        self.set_lease(None)

    def select(
        self, in_flight: Mapping[str, str], parked: Mapping[str, float], mono_now: float
    ) -> Job | None:
        """The next leased segment to upload now, or None."""
        finished: FinishedLease | None = None
        job: Job | None = None
        with self._lock:
            lease = self._lease
            if lease is None:
                return None
            if not lease.usable(self._clock.now_us()):
                if lease.segments and lease.rate_bps > 0:  # expired with work left
                    finished = self._finish(lease, expired=True)
            else:
                pick = next_segment(
                    lease, self._done, self._failed, in_flight, parked, mono_now, self._state
                )
                self._done.update(pick.done)
                self._failed.update(pick.failed)
                if pick.segment is not None:
                    info = self._buffer.get(pick.segment.segment_id)
                    if info is not None:
                        job = Job(info, lease.lease_id)
                    if pick.last:  # report now: the next lease arrives while this one sends
                        finished = self._finish(lease, expired=False)
                elif all(
                    s.segment_id in self._done or s.segment_id in self._failed
                    for s in lease.segments
                ):  # nothing left, nothing of it in flight
                    finished = self._finish(lease, expired=False)
        if finished is not None:
            for callback in list(self._listeners):
                try:
                    callback(finished)
                except Exception:
                    log.exception("lease %s: finish handler failed", finished.lease_id)
        return job

    def _finish(self, lease: AgentLease, expired: bool) -> FinishedLease:
        """(lock held) The lease is over: drop it and describe what it achieved."""
        self._lease = None
        return FinishedLease(
            lease.lease_id, tuple(sorted(self._done)), tuple(sorted(self._failed)), expired
        )

    def _state(self, segment_id: str) -> str | None:
        info = self._buffer.get(segment_id)
        return None if info is None else str(info.state)


class LeasedUploader(Uploader):
    """The Uploader with its `select_next` seam answered by a LeasedJobSource."""

    def __init__(
        self,
        buffer: LeaseBuffer,
        client: SegmentSender,
        clock: Clock,
        on_event: Callable[[AgentEvent], None],
        source: LeasedJobSource,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(buffer, client, clock, on_event, policy=policy, **kwargs)
        self._source = source

    def select_next(self) -> Job | None:
        """(called with the uploader's lock held) Only what the lease in force allows."""
        parked = {sid: p.until for sid, p in self._parked.items()}
        return self._source.select(dict(self._busy), parked, self._clock.monotonic())
