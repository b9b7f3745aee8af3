"""The agent's durable local segment buffer: files on disk, an SQLite index, a byte quota.

A commit is: the segmenter wrote the segment to a temp file under tmp/; the buffer hashes it
(one read) and fsyncs it, renames it into segments/<camera>/<YYYYMMDD>/, fsyncs that directory,
then inserts the index row, advances the camera's hash chain and applies the quota, all in one
SQLite transaction. Only then does commit return, so after a kill -9 at any instant the
recovery in `open` finds: no partial segment indexed (the row comes last), no indexed segment
missing (its file was durable first), no duplicate (ids are checked and unique in the index).

Quota policy (see eviction.py): uploaded segments go first, then the oldest unsent ones, never
held ones. When everything left is held, the new segment is still kept and the buffer stays
over quota (`over_quota_bytes`): deleting evidence or the newest recording to honour a number
would be a silent loss. Every eviction is recorded; unsent ones are the losses to report.

Thread-safe: camera threads commit concurrently. Hashing and fsync of the temp file run outside
the lock; the chain, the rename and the index change run under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.clock import Clock
from edge_agent.model import (
    BufferStats,
    Gap,
    Hold,
    SegmentFlag,
    SegmentInfo,
    SegmentState,
)
from edge_agent.store import validate
from edge_agent.store.errors import DiskFullError, StoreError, is_disk_full
from edge_agent.store.eviction import EvictionPlan
from edge_agent.store.files import FileOps
from edge_agent.store.index import Index
from edge_agent.store.opening import prepare
from edge_agent.store.quota import delete_evicted_files, evict_in_transaction
from edge_agent.store.records import MAX_LIMIT, LossRecords

log = logging.getLogger(__name__)


class SegmentBuffer(LossRecords):
    """See the module docstring. Create with `SegmentBuffer.open`, finish with `close`."""

    def __init__(
        self, root: Path, quota_bytes: int, clock: Clock, index: Index, files: FileOps, lock_fd: int
    ) -> None:
        self._root = root
        self._tmp = root / "tmp"
        self._seg_dir = root / "segments"
        self._quota = quota_bytes
        self._clock = clock
        self._index = index
        self._files = files
        self._lock_fd = lock_fd
        self._lock = threading.Lock()
        self._closed = False
        self._used = index.used_bytes()
        self._clock_skewed: Callable[[], bool] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def open(
        cls, root: Path, quota_bytes: int, clock: Clock, *, file_ops: FileOps | None = None
    ) -> SegmentBuffer:
        """Open (creating if needed) the buffer at `root` and recover from any crash."""
        quota = validate.positive("quota_bytes", quota_bytes, 2**62)
        files = file_ops or FileOps()
        root = Path(root)
        lock_fd, index = prepare(root, files, clock)
        buffer = cls(root, quota, clock, index, files, lock_fd)
        try:
            buffer.enforce_quota()  # the quota may have shrunk since the last run
        except StoreError:
            buffer.close()
            raise
        return buffer

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._index.close()
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> SegmentBuffer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        """Serialize access to the index, and translate I/O failures once, here: callers see
        only StoreError (DiskFullError when the disk is full), naming what failed."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{what}: buffer {self._root} is closed")
            try:
                yield
            except (OSError, sqlite3.Error) as exc:
                error = DiskFullError if is_disk_full(exc) else StoreError
                raise error(f"{what} failed in buffer {self._root}: {exc}") from exc

    # -- writing segments -------------------------------------------------------------------

    def set_clock_check(self, skewed: Callable[[], bool] | None) -> None:
        """Segments committed while `skewed()` is true get SegmentFlag.CLOCK_SKEW: their times
        came from a clock known to be off the controller's (ClockOffset.skewed)."""
        self._clock_skewed = skewed

    def temp_path(self, camera_id: str, container: str = "ts") -> Path:
        """A fresh unique path under tmp/ for the segmenter to write one segment into."""
        cam = validate.camera(camera_id)
        ext = validate.container(container, cam)
        return self._tmp / f"{cam}.{uuid.uuid4().hex}.{ext}"  # the extension tells PyAV the format

    def discard(self, temp_path: Path) -> None:
        """Delete a temp file the segmenter gave up on (missing is fine)."""
        path = Path(temp_path)
        if path.parent.resolve() != self._tmp.resolve():
            raise StoreError(f"{path} is not a temp file of buffer {self._root}")
        with contextlib.suppress(FileNotFoundError):
            self._files.unlink(self._tmp / path.name)

    def commit(
        self,
        camera_id: str,
        temp_path: Path,
        start_us: int,
        duration_us: int,
        flags: SegmentFlag = SegmentFlag.NONE,
        container: str = "ts",
        *,
        digest: tuple[int, str] | None = None,
    ) -> SegmentInfo:
        """Make the segment durable and indexed; returns its info once it is safe.

        `digest` is (size, SHA-256) of the file as its writer wrote it (hashed on the way to
        disk, see edge_agent.capture.tsfile), which spares reading it again; a file whose size
        on disk differs is read and hashed as it is.

        Bad input (invalid arguments, a path outside tmp/, an empty or larger-than-quota file)
        raises StoreError and leaves everything, the temp file included, as it was: the caller
        discards it. An I/O failure drops the segment (its temp file is removed) and raises
        DiskFullError for ENOSPC/EDQUOT, StoreError otherwise; buffered segments are intact.
        """
        cam = validate.camera(camera_id)
        start = validate.micros("start_us", start_us, cam)
        duration = validate.micros("duration_us", duration_us, cam)
        flag = validate.flags(flags, cam)
        if self._clock_skewed is not None and self._clock_skewed():
            flag |= SegmentFlag.CLOCK_SKEW
        ext = validate.container(container, cam)
        temp = validate.temp_file(temp_path, self._tmp, cam)
        try:
            if digest is None:
                size, sha = self._files.hash_and_sync(temp)
            else:
                size, sha = self._files.sync_known(temp, digest)
        except OSError as exc:
            if is_disk_full(exc):
                self._drop(temp)
                raise DiskFullError(f"camera {cam}: disk full syncing {temp}: {exc}") from exc
            raise StoreError(f"camera {cam}: cannot read segment {temp}: {exc}") from exc
        if size == 0:
            raise StoreError(f"camera {cam}: segment {temp} is empty")
        if size > self._quota:
            raise StoreError(
                f"camera {cam}: segment {temp} is {size} bytes, more than the whole buffer "
                f"quota of {self._quota} bytes"
            )
        with self._locked(f"commit of camera {cam}"):
            segment_id = self._unique_id(cam, start)
            day = datetime.fromtimestamp(start / 1e6, UTC).strftime("%Y%m%d")
            filename = f"{cam}/{day}/{segment_id}.{ext}"
            final = self._seg_dir / filename
            head = self._index.camera_head(cam)
            info = SegmentInfo(
                segment_id=segment_id,
                camera_id=cam,
                start_us=start,
                duration_us=duration,
                size_bytes=size,
                sha256=sha,
                prev_sha256=head.head_sha256,
                container=ext,
                flags=flag,
                state=SegmentState.UNSENT,
                filename=filename,
            )
            placed = temp
            try:
                self._files.ensure_dir(final.parent)
                self._files.rename(temp, final)
                placed = final
                self._files.fsync_dir(final.parent)
                with self._index.transaction():
                    self._index.insert_segment(info, head.head_seq + 1, self._clock.now_us())
                    self._index.set_camera_head(cam, head.head_seq + 1, sha)
                    evicted, plan = self._evict(self._used + size, frozenset({segment_id}))
            except (OSError, sqlite3.Error) as exc:
                self._drop(placed)
                if is_disk_full(exc):
                    raise DiskFullError(
                        f"camera {cam}: disk full committing segment {segment_id} ({temp.name}); "
                        "it was dropped, buffered segments are intact"
                    ) from exc
                raise StoreError(
                    f"camera {cam}: cannot commit segment {segment_id} ({temp.name}): {exc}"
                ) from exc
            self._used += size
            self._finish_eviction(evicted, plan)
        return info

    # -- queries ----------------------------------------------------------------------------

    def get(self, segment_id: str) -> SegmentInfo | None:
        with self._locked("get"):
            return self._index.get(segment_id)

    def path_of(self, info: SegmentInfo) -> Path:
        return self._seg_dir / validate.relative_filename(info.filename)

    def segments(
        self,
        camera_id: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        state: SegmentState | None = None,
    ) -> list[SegmentInfo]:
        """Segments overlapping [start_us, end_us), ordered by camera then start."""
        cam = None if camera_id is None else validate.camera(camera_id)
        start, end = validate.optional_range(start_us, end_us)
        if state is not None and not isinstance(state, SegmentState):
            raise StoreError(f"state must be a SegmentState, got {state!r}")
        with self._locked("segments query"):
            return self._index.segments(cam, start, end, state)

    def unsent(self, limit: int = 100, camera_id: str | None = None) -> list[SegmentInfo]:
        """Unsent segments, oldest first."""
        count = validate.positive("limit", limit, MAX_LIMIT)
        cam = None if camera_id is None else validate.camera(camera_id)
        with self._locked("unsent query"):
            return self._index.unsent(count, cam)

    def stats(self) -> BufferStats:
        with self._locked("stats"):
            totals = self._index.totals_by_state()
            unsent_n, unsent_b = totals[SegmentState.UNSENT]
            up_n, up_b = totals[SegmentState.UPLOADED]
            return BufferStats(
                total_bytes=unsent_b + up_b,
                quota_bytes=self._quota,
                unsent_segments=unsent_n,
                unsent_bytes=unsent_b,
                uploaded_segments=up_n,
                uploaded_bytes=up_b,
                held_segments=self._index.held_segment_count(),
                oldest_unsent_start_us=self._index.oldest_unsent_start_us(),
            )

    def oldest_unsent_age_s(self) -> float | None:
        """Age of the oldest unsent recording (by its start) on the injected clock."""
        with self._locked("oldest unsent age"):
            oldest = self._index.oldest_unsent_start_us()
        if oldest is None:
            return None
        return max(0.0, (self._clock.now_us() - oldest) / 1e6)

    def enforce_quota(self) -> int:
        """Evict down to the quota now (commit and release do it anyway); returns the bytes
        still over quota because the rest is held."""
        with self._locked("quota enforcement"):
            with self._index.transaction():
                evicted, plan = self._evict(self._used, frozenset())
            self._finish_eviction(evicted, plan)
            return max(0, self._used - self._quota)

    def over_quota_bytes(self) -> int:
        """How far the buffer is over quota because everything evictable is held (0 if not)."""
        with self._locked("over quota"):
            return max(0, self._used - self._quota)

    def last_sha256(self, camera_id: str) -> str:
        cam = validate.camera(camera_id)
        with self._locked(f"last hash of camera {cam}"):
            return self._index.camera_head(cam).head_sha256

    # -- upload state, holds, gaps ------------------------------------------------------------

    def mark_uploaded(self, segment_id: str) -> None:
        """Idempotent. An upload that completed after its segment was evicted turns that
        eviction from a loss into a non-loss; an id never seen is a StoreError."""
        with self._locked(f"mark_uploaded {segment_id}"):
            info = self._index.get(segment_id)
            if info is not None and info.state is SegmentState.UPLOADED:
                return
            with self._index.transaction():
                if info is not None:
                    self._index.set_uploaded(segment_id)
                elif not self._index.evicted_unsent_to_uploaded(segment_id):
                    raise StoreError(f"unknown segment {segment_id!r}")

    def hold(self, camera_id: str, start_us: int, end_us: int, case_id: str) -> Hold:
        """Pin a camera's time range (evidence) until released. Idempotent for the same
        camera, range and case: a re-delivered command returns the existing hold."""
        cam = validate.camera(camera_id)
        start, end = validate.time_range(cam, start_us, end_us)
        case = validate.text("case_id", case_id, cam)
        with self._locked(f"hold on camera {cam}"):
            existing = self._index.find_hold(cam, start, end, case)
            if existing is not None:
                return existing
            hold = Hold(uuid.uuid4().hex, cam, start, end, case)
            with self._index.transaction():
                self._index.insert_hold(hold, self._clock.now_us())
        log.info("hold %s: camera %s [%d, %d) case %s", hold.hold_id, cam, start, end, case)
        return hold

    def release(self, hold_id: str) -> bool:
        """Drop a hold; False if there was none. The quota is applied again right away."""
        with self._locked(f"release of hold {hold_id}"):
            with self._index.transaction():
                released = self._index.delete_hold(hold_id)
                evicted, plan = self._evict(self._used, frozenset())
            self._finish_eviction(evicted, plan)
        return released

    def holds(self) -> list[Hold]:
        with self._locked("holds query"):
            return self._index.holds()

    def record_gap(self, gap: Gap) -> None:
        """Durably note that a camera produced nothing in a time range (idempotent)."""
        cam = validate.camera(gap.camera_id)
        start, end = validate.time_range(cam, gap.start_us, gap.end_us)
        reason = validate.text("gap reason", gap.reason, cam)
        with self._locked(f"gap of camera {cam}"), self._index.transaction():
            self._index.insert_gap(Gap(cam, start, end, reason), self._clock.now_us())

    def gaps(
        self, camera_id: str | None = None, start_us: int | None = None, end_us: int | None = None
    ) -> list[Gap]:
        cam = None if camera_id is None else validate.camera(camera_id)
        start, end = validate.optional_range(start_us, end_us)
        with self._locked("gaps query"):
            return self._index.gaps(cam, start, end)

    # -- internals --------------------------------------------------------------------------

    def _unique_id(self, camera_id: str, start_us: int) -> str:
        base = f"{camera_id}-{start_us}"
        candidate, n = base, 0
        while self._index.id_taken(candidate):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _evict(self, used: int, keep: frozenset[str]) -> tuple[list[SegmentInfo], EvictionPlan]:
        return evict_in_transaction(self._index, used, self._quota, keep, self._clock.now_us())

    def _finish_eviction(self, evicted: list[SegmentInfo], plan: EvictionPlan) -> None:
        self._used -= delete_evicted_files(self._files, self._seg_dir, evicted, plan)

    def _drop(self, path: Path) -> None:
        try:
            self._files.unlink(path)
        except OSError as exc:
            log.warning("cannot delete %s: %s", path, exc)
