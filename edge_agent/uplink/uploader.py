"""The upload loop: drains the local buffer into the controller, oldest segment first.

Invariant this module exists for: a segment is marked uploaded ONLY after the controller
acknowledged its commit (COMMITTED or ALREADY_COMMITTED) or that it holds the verified bytes
durably in its commit queue (ACCEPTED: committed to the store as soon as that answers).
Anything else leaves it unsent in the buffer, where it stays visible (health reports, the
scheduler's inventory) until it arrives.

- Transient failures (controller or storage down, too busy, broken connection) are retried
  forever with capped exponential backoff and jitter (failover.retry_delay_s): thousands of
  villages reconnecting after a city-side outage must not arrive in lockstep. Each retry
  resumes from the bytes the controller already holds. `resume()` (the controller said it
  is ready again: its lease stream or its store-health watch, edge_agent.leases) ends every
  backoff wait at once and starts the backoff over, so uploads go on within a second of the
  city being back instead of up to a minute later.
- A conflict (the controller holds the id with another SHA-256) is never retried in this run:
  it is recorded, reported as an AgentEvent and the segment is skipped (still unsent).
- Other refusals (unknown camera, bad header...) park the segment for `park_s`, then retry:
  an operator may fix the registry meanwhile.
- At most one segment per camera is in flight, in start order, so the controller's per-camera
  hash chain sees segments in order.

`select_next()` is the seam the lease machinery replaces: today it takes the oldest unsent
segment of an idle camera; with leases it will take what the scheduler granted.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from edge_agent.clock import Clock
from edge_agent.model import AgentEvent, SegmentInfo
from edge_agent.uplink.errors import (
    ConflictError,
    PermanentError,
    RetryableError,
    SegmentGoneError,
    UploadCancelled,
)
from edge_agent.uplink.failover import retry_delay_s
from edge_agent.uplink.plan import Outcome, UploadResult

log = logging.getLogger(__name__)


class SegmentSource(Protocol):
    """What the uploader needs from the agent's buffer (edge_agent.store.SegmentBuffer)."""

    def unsent(self, limit: int = 100, camera_id: str | None = None) -> list[SegmentInfo]: ...

    def path_of(self, info: SegmentInfo) -> Path: ...

    def mark_uploaded(self, segment_id: str) -> None: ...


class SegmentSender(Protocol):
    """What the uploader needs from the transport (edge_agent.uplink.client.IngestClient)."""

    def upload(
        self,
        info: SegmentInfo,
        path: Path,
        lease_id: str = "",
        cancel: threading.Event | None = None,
    ) -> UploadResult: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff of transient failures; `park_s` for refused segments. Small values in tests."""

    initial_s: float = 1.0
    cap_s: float = 60.0
    park_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.cap_s:
            raise ValueError(f"need 0 < initial_s <= cap_s, got {self.initial_s}, {self.cap_s}")
        if self.park_s < 0:
            raise ValueError(f"park_s must not be negative, got {self.park_s}")


@dataclass(frozen=True, slots=True)
class Job:
    """One segment to upload, under a lease (empty until the scheduler issues leases)."""

    info: SegmentInfo
    lease_id: str = ""


@dataclass(frozen=True, slots=True)
class UplinkStats:
    """Counters for health reports and tests."""

    committed: int = 0
    already_committed: int = 0
    bytes_sent: int = 0
    retries: int = 0
    conflicts: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()
    last_error: str = ""


@dataclass(slots=True)
class _Parked:
    until: float  # monotonic seconds; inf = for the rest of this run
    reason: str


def pick_next(
    unsent: Iterable[SegmentInfo], busy_cameras: set[str], parked: Mapping[str, float], now: float
) -> SegmentInfo | None:
    """The oldest segment worth trying now (pure).

    Skips cameras with an upload in flight (per-camera order) and segments parked until later.
    A parked segment does not block its camera's later segments: one refused segment must not
    stop a camera's upload for good (the controller flags the resulting chain gap).
    """
    for info in unsent:
        if info.camera_id in busy_cameras:
            continue
        if parked.get(info.segment_id, -1.0) > now:
            continue
        return info
    return None


@dataclass(slots=True)
class _Counters:
    committed: int = 0
    already_committed: int = 0
    bytes_sent: int = 0
    retries: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    last_error: str = ""


class Uploader:
    """Worker threads draining `buffer` through `client`; start()/stop() lifecycle."""

    def __init__(
        self,
        buffer: SegmentSource,
        client: SegmentSender,
        clock: Clock,
        on_event: Callable[[AgentEvent], None],
        policy: RetryPolicy | None = None,
        concurrency: int = 1,
        idle_poll_s: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._buffer = buffer
        self._client = client
        self._clock = clock
        self._on_event = on_event
        self._policy = policy or RetryPolicy()
        self._concurrency = concurrency
        self._idle_poll_s = idle_poll_s
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy: dict[str, str] = {}  # camera_id -> segment_id in flight
        self._parked: dict[str, _Parked] = {}
        self._n = _Counters()
        self._resumes = 0  # bumped by resume(): backoff waits end, backoffs start over
        self._rng = random.Random()  # noqa: S311 - retry jitter, not secrets

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("uploader already started")
        self._stopping.clear()
        for i in range(self._concurrency):
            t = threading.Thread(target=self._worker, name=f"uplink-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop promptly: in-flight uploads are cancelled (the controller keeps what arrived)."""
        self._stopping.set()
        with self._wakeup:
            self._wakeup.notify_all()
        for t in self._threads:
            t.join(timeout)
        stuck = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        if stuck:
            log.warning("uplink threads still running after %.1fs: %s", timeout, stuck)

    def wake(self) -> None:
        """New segments were committed to the buffer (or a lease arrived): look now."""
        with self._wakeup:
            self._wakeup.notify_all()

    def resume(self) -> None:
        """The controller (or its store) is ready again: uploads waiting out a backoff try
        now, and their backoff starts again from `initial_s`."""
        with self._wakeup:
            self._resumes += 1
            self._wakeup.notify_all()

    # -- state -------------------------------------------------------------------------------

    @property
    def sender(self) -> SegmentSender:
        """The transport this uploader sends through (health reads its route)."""
        return self._client

    def stats(self) -> UplinkStats:
        with self._lock:
            n = self._n
            return UplinkStats(
                committed=n.committed,
                already_committed=n.already_committed,
                bytes_sent=n.bytes_sent,
                retries=n.retries,
                conflicts=tuple(n.conflicts),
                refused=tuple(n.refused),
                in_flight=tuple(sorted(self._busy.values())),
                last_error=n.last_error,
            )

    def idle(self) -> bool:
        """Nothing in flight and nothing that could be tried now (parked ones excluded)."""
        with self._lock:
            return not self._busy and self.select_next() is None

    def unpark(self, segment_id: str | None = None) -> None:
        """Let refused/conflicting segments be tried again (an operator resolved them)."""
        with self._wakeup:
            if segment_id is None:
                self._parked.clear()
            else:
                self._parked.pop(segment_id, None)
            self._wakeup.notify_all()

    # -- the seam ----------------------------------------------------------------------------

    def select_next(self) -> Job | None:
        """The next segment to upload (called with the lock held). Leases will replace this."""
        now = self._clock.monotonic()
        parked = {sid: p.until for sid, p in self._parked.items()}
        limit = min(10_000, 100 + len(parked) + len(self._busy))
        info = pick_next(self._buffer.unsent(limit=limit), set(self._busy), parked, now)
        return Job(info) if info is not None else None

    # -- the loop ----------------------------------------------------------------------------

    def _worker(self) -> None:
        while not self._stopping.is_set():
            job = self._claim()
            if job is None:
                continue
            try:
                self._run(job)
            except Exception as exc:  # a bug must not kill the thread; the segment stays unsent
                log.exception("uplink: unexpected error on segment %s", job.info.segment_id)
                self._park(job.info, self._policy.park_s, f"unexpected error: {exc!r}")
            finally:
                with self._wakeup:
                    self._busy.pop(job.info.camera_id, None)
                    self._wakeup.notify_all()

    def _claim(self) -> Job | None:
        with self._wakeup:
            try:
                job = self.select_next()
            except Exception:
                log.exception("uplink: cannot read the buffer")
                job = None
            if job is None:
                self._wakeup.wait(self._idle_poll_s)
                return None
            self._busy[job.info.camera_id] = job.info.segment_id
            return job

    def _run(self, job: Job) -> None:
        info = job.info
        try:
            result = self._retrying(lambda: self._attempt(job))
        except UploadCancelled:
            return
        except RetryableError as exc:  # only when stopping: the retry loop stops then
            log.info("uplink: %s left for later (stopping): %s", info.segment_id, exc)
            return
        except ConflictError as exc:
            self._conflict(info, str(exc))
            return
        except SegmentGoneError as exc:
            log.warning("uplink: %s", exc)
            self._park(info, self._policy.park_s, str(exc))
            return
        except PermanentError as exc:
            log.error("uplink: controller refused %s: %s", info.segment_id, exc)
            self._park(info, self._policy.park_s, str(exc))
            with self._lock:
                self._n.refused.append(info.segment_id)
            return
        self._acknowledged(info, result)

    def _attempt(self, job: Job) -> UploadResult:
        path = self._buffer.path_of(job.info)
        return self._client.upload(job.info, path, job.lease_id, self._stopping)

    def _retrying(self, fn: Callable[[], UploadResult]) -> UploadResult:
        """`fn` until it succeeds, fails for good, or the uploader stops (then the last
        RetryableError is raised); a resume() during an attempt or a wait restarts the
        backoff and ends the wait."""
        policy = self._policy
        failures = 0
        while True:
            with self._lock:
                seen = self._resumes  # before the attempt: a resume() during it counts
            try:
                return fn()
            except RetryableError as exc:
                if self._stopping.is_set():
                    raise
                failures += 1
                wait = retry_delay_s(
                    failures, 1, policy.initial_s, policy.cap_s, self._rng.random()
                )
                self._before_sleep(failures, exc, wait)
                if self._sleep(wait, seen):
                    failures = 0  # the city is back: start over from the shortest backoff

    def _sleep(self, seconds: float, seen: int) -> bool:
        """Wait out a backoff; True when resume() was called since `seen`."""
        with self._wakeup:
            self._wakeup.wait_for(
                lambda: self._stopping.is_set() or self._resumes != seen, timeout=seconds
            )
            return self._resumes != seen

    def _before_sleep(self, attempt: int, exc: RetryableError, wait: float) -> None:
        with self._lock:
            self._n.retries += 1
            self._n.last_error = str(exc)
        log.warning("uplink: attempt %d failed (%s); retrying in %.1fs", attempt, exc, wait)

    # -- outcomes ----------------------------------------------------------------------------

    def _acknowledged(self, info: SegmentInfo, result: UploadResult) -> None:
        """The controller committed the segment (or holds it verified in its commit queue,
        ACCEPTED): now, and only now, mark it uploaded, so eviction never counts what the
        city holds as an unsent loss."""
        try:
            self._buffer.mark_uploaded(info.segment_id)
        except Exception as exc:  # evicted meanwhile: it IS in the cloud, nothing is lost
            log.warning("uplink: %s committed but not marked uploaded: %s", info.segment_id, exc)
        with self._lock:
            if result.outcome is not Outcome.ALREADY_COMMITTED:
                self._n.committed += 1
            else:
                self._n.already_committed += 1
            self._n.bytes_sent += result.bytes_sent
        log.debug(
            "uplink: %s %s (resumed at %d, sent %d bytes)",
            info.segment_id,
            result.outcome,
            result.resumed_from,
            result.bytes_sent,
        )
        if result.chain_ok is False:
            self._emit(
                info,
                f"controller flagged the hash chain at {info.segment_id}: the previous segment "
                "it holds for this camera does not match (gap or tampering)",
            )

    def _conflict(self, info: SegmentInfo, detail: str) -> None:
        log.error("uplink: conflict, not retried: %s", detail)
        self._park(info, float("inf"), detail)
        with self._lock:
            self._n.conflicts.append(info.segment_id)
        self._emit(info, f"upload conflict: {detail}")

    def _park(self, info: SegmentInfo, seconds: float, reason: str) -> None:
        with self._lock:
            self._parked[info.segment_id] = _Parked(self._clock.monotonic() + seconds, reason)
            self._n.last_error = reason

    def _emit(self, info: SegmentInfo, detail: str) -> None:
        event = AgentEvent(
            kind="chain_break",
            at_us=self._clock.now_us(),
            camera_id=info.camera_id,
            start_us=info.start_us,
            end_us=info.end_us,
            size_bytes=info.size_bytes,
            detail=detail,
        )
        try:
            self._on_event(event)
        except Exception:
            log.exception("uplink: event handler failed for %s", replace(event, detail=""))
