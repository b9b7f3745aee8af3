"""The ingest service: one segment upload from header to catalog row, and resume queries.

No gRPC here (the servicer adapts it): the caller hands in the authenticated device id and
an iterator of `Header | bytes` parts. The order of work is what makes it crash-safe and
idempotent:

    stage (append + hash) -> verify size and SHA-256 -> judge the chain against the catalog
    -> hand the staged file to the store (durable there) -> catalog row -> flag history, or
    clear the gap flag of a later segment this one proves -> delete the staging

This module receives (up to a verified staged file); commit.py does the rest. A crash
before the row leaves the staged file complete; the agent's retry (QueryOffset says "all of
it", it sends a header and no chunks) re-verifies and re-puts the same bytes under the same
key (an idempotent overwrite) and writes the row. A crash after the row leaves only a stale
staging file, removed by `recover()`. Every refusal is an `IngestError` (rules.py) and
leaves the catalog and the store as they were. The agent hears "committed" only after the
store has made the object durable (for the local store: one fsync of the file, one of its
directory, no copy) and the catalog has committed its row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from controller.catalog import (
    CameraRow,
    Catalog,
    CatalogError,
    CatalogUnavailableError,
)
from controller.clock import Clock
from controller.ingest.caches import CameraCache, ProbeMemo
from controller.ingest.commit import Committed, Committer, Probe, unavailable
from controller.ingest.commit_queue import CommitQueue
from controller.ingest.fairness import Staged, plan_staging
from controller.ingest.ledger import VERIFIED, LedgerError
from controller.ingest.rules import (
    Code,
    Header,
    IngestError,
    Limits,
    check_chunk,
    check_complete,
    check_ids,
    check_scope,
    decide_offset,
    validate_header,
)
from controller.ingest.slots import UploadSlots
from controller.ingest.staging import StagedUpload, Staging
from controller.ingest.stream import StreamReceiver
from controller.media.probe import probe_bytes, probe_file
from controller.storage import ObjectStore

Part = Header | bytes | memoryview  # a chunk may view the received message (wire.py)
log = logging.getLogger("vigil.ingest")


@dataclass(frozen=True, slots=True)
class Offset:
    offset: int
    committed: bool
    sha256: str  # hex, when committed


class IngestService:
    """Thread-safe: one instance serves every upload stream of a controller.

    `exclusive_writer`: this controller is the only one committing segments to the catalog
    (commit.py). None infers it from the database: SQLite means one controller
    (docs/architecture.md), PostgreSQL may have replicas. `camera_ttl_s`: how long a camera's
    registration is trusted without asking the catalog again (caches.py). Each verified
    segment's media facts for the catalog come from its head (PyAV, header only), probed once
    per camera and change of stream parameters (`ProbeMemo`); `probe` reads a staged file
    whose head cannot be read.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        staging: Staging,
        limits: Limits,
        clock: Clock,
        slots: UploadSlots,
        exclusive_writer: bool | None = None,
        camera_ttl_s: float = 10.0,
        probe: Probe = probe_file,
        streaming: StreamReceiver | None = None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._staging = staging
        self._limits = limits
        self._clock = clock
        self.slots = slots
        if exclusive_writer is None:
            exclusive_writer = catalog.engine.dialect.name == "sqlite"
        self._cameras = CameraCache(clock, camera_ttl_s)
        memo = ProbeMemo(probe_bytes)  # each camera probed once per change (caches.py)
        self._committer = Committer(catalog, store, staging, clock, exclusive_writer, probe, memo)
        # A store that takes bytes as they arrive (S3): no staging file (stream.py).
        self._stream = streaming
        self.queue = None if streaming is None else CommitQueue(streaming, self._committer, memo)

    # --- queries -------------------------------------------------------------------------

    def authorize(self, device_id: str, camera_id: str) -> CameraRow:
        """The camera, if it is registered to `device_id`; NOT_FOUND / PERMISSION_DENIED."""
        camera = self._cameras.get(camera_id)
        if camera is None:
            try:
                camera = self._catalog.camera(camera_id)
            except CatalogUnavailableError as exc:
                raise unavailable("catalog lookup", exc) from exc
            if camera is not None:
                self._cameras.put(camera)
        if camera is None:
            raise IngestError(Code.NOT_FOUND, f"unknown camera {camera_id!r}: not registered")
        if camera.device_id != device_id:
            raise IngestError(
                Code.PERMISSION_DENIED,
                f"camera {camera_id!r} is not registered to device {device_id!r}",
            )
        return camera

    def query_offset(self, device_id: str, segment_id: str, camera_id: str) -> Offset:
        """How much of a segment the server holds: committed, or the staged byte count."""
        check_ids(segment_id, camera_id)
        check_scope(segment_id, camera_id)  # before any lookup: no oracle for other ids
        self.authorize(device_id, camera_id)
        row = self._committer.committed(segment_id)
        if row is not None:
            if row.camera_id != camera_id:
                raise IngestError(
                    Code.ALREADY_EXISTS,
                    f"segment id {segment_id!r} is already committed for another camera",
                )
            return Offset(row.size_bytes, True, row.sha256)
        if self._stream is not None:
            return Offset(self._stream.held(device_id, segment_id, camera_id), False, "")
        held = self._staging.held(device_id, segment_id)
        if held is None or held[1].camera_id != camera_id:
            return Offset(0, False, "")
        size, header = held
        return Offset(min(size, header.size_bytes), False, "")

    # --- upload --------------------------------------------------------------------------

    def upload(
        self,
        device_id: str,
        parts: Iterator[Part],
        on_cancel: Callable[[], object] | None = None,
    ) -> Committed:
        """Receive one segment stream; `on_cancel` lets the idle reaper abort a stalled one."""
        with self.slots.upload(on_cancel, device_id) as activity:
            first = next(parts, None)
            if first is None:
                raise IngestError(Code.INVALID_ARGUMENT, "empty stream: header missing")
            if not isinstance(first, Header):
                raise IngestError(
                    Code.INVALID_ARGUMENT, "chunk before header: the first message must be a header"
                )
            header = validate_header(first, self._limits, self._clock.now_us())
            camera = self.authorize(device_id, header.camera_id)
            if not self._committer.surely_new(header):
                done = self._committer.check_existing(device_id, header)
                if done is not None:
                    return done
            with self.slots.segment(device_id, header.segment_id):
                if self._stream is not None:
                    return self._streamed(device_id, camera, header, parts, activity)
                held = self._staging.held(device_id, header.segment_id)
                plan = decide_offset(
                    header.offset,
                    None if held is None else held[0],
                    held is not None and held[1].same_segment(header),
                )
                self._make_room(device_id, header)
                try:
                    staged = self._staging.open(device_id, header, plan)
                except OSError as exc:
                    raise unavailable("staging", exc) from exc
                try:
                    self._receive(staged, header, parts, activity)
                finally:
                    _close(staged)
                try:
                    check_complete(
                        staged.received, header.size_bytes, staged.sha256_hex(), header.sha256
                    )
                    _check_staged_size(staged, header)
                except IngestError as exc:
                    if exc.code is Code.DATA_LOSS:
                        self._staging.discard(device_id, header.segment_id)
                    raise
                return self._committer.commit(device_id, camera, header, staged.path)

    def _streamed(
        self,
        device_id: str,
        camera: CameraRow,
        header: Header,
        parts: Iterator[Part],
        activity: Callable[[], None],
    ) -> Committed:
        """Straight into the store (stream.py), then the catalog row (commit_queue.py)."""
        stream, queue = self._stream, self.queue
        assert stream is not None and queue is not None
        key = self._committer.key_for(camera, header)
        if header.size_bytes > stream.part_size:
            self._make_stream_room(stream, device_id, header)
        stored = stream.receive(device_id, header, key, parts, activity)
        return queue.finish(device_id, header, stored)

    def _make_stream_room(self, stream: StreamReceiver, device_id: str, header: Header) -> None:
        """The device's multipart uploads within its budget, as for staging (fairness.py);
        verified ones (the commit queue) count but are never discarded."""
        try:
            rows = stream.ledger.device_rows(device_id)
        except LedgerError as exc:
            raise unavailable("ingest ledger", exc) from exc
        entries = [
            Staged(
                r.segment_id,
                r.stored_bytes,
                r.updated_us / 1_000_000,
                r.state == VERIFIED or self.slots.is_active(device_id, r.segment_id),
            )
            for r in rows
        ]
        plan = plan_staging(self.slots.shares, entries, header.segment_id, header.size_bytes)
        if plan.refusal is not None:
            raise IngestError(Code.RESOURCE_EXHAUSTED, plan.refusal)
        by_id = {r.segment_id: r for r in rows}
        for segment_id in plan.discard:
            stream.discard(by_id[segment_id])
        if plan.discard:
            log.warning(
                "device %s: upload budget reached, aborted %d older partial upload(s)",
                device_id,
                len(plan.discard),
            )

    def drain_queue(self) -> int:
        """Commit verified segments the store could not take when they arrived."""
        if self.queue is None:
            return 0
        return self.queue.drain(self.slots.is_active)

    def _make_room(self, device_id: str, header: Header) -> None:
        """Keep this device's staging within its budget (fairness.py): its oldest inactive
        partial uploads go first; RESOURCE_EXHAUSTED when its own streams fill it."""
        try:
            staged = [
                Staged(seg, size, mtime, self.slots.is_active(device_id, seg))
                for seg, size, mtime in self._staging.device_entries(device_id)
            ]
        except OSError as exc:
            raise unavailable("staging", exc) from exc
        plan = plan_staging(self.slots.shares, staged, header.segment_id, header.size_bytes)
        if plan.refusal is not None:
            raise IngestError(Code.RESOURCE_EXHAUSTED, plan.refusal)
        for segment_id in plan.discard:
            self._staging.discard(device_id, segment_id)
        if plan.discard:
            log.warning(
                "device %s: staging budget reached, discarded %d older partial upload(s): %s",
                device_id,
                len(plan.discard),
                ", ".join(plan.discard[:5]),
            )

    def _receive(
        self,
        staged: StagedUpload,
        header: Header,
        parts: Iterator[Part],
        activity: Callable[[], None],
    ) -> None:
        for part in parts:
            activity()
            if isinstance(part, Header):
                raise IngestError(
                    Code.INVALID_ARGUMENT,
                    f"second header in one stream (the server holds {staged.received} bytes)",
                )
            check_chunk(staged.received, len(part), header.size_bytes, self._limits.max_chunk_bytes)
            try:
                staged.write(part)
            except OSError as exc:
                raise unavailable("staging write", exc) from exc

    # --- housekeeping --------------------------------------------------------------------

    def recover(self, max_age_s: float) -> int:
        """Drop staging that is committed already or abandoned; returns how many were removed.

        Run at start-up (a crash after the catalog row leaves the staged copy behind) and
        periodically (agents that never come back for a partial upload).
        """
        removed = 0
        now_s = self._clock.now_us() / 1_000_000
        for device_id, segment_id, mtime in list(self._staging.entries()):
            if self.slots.is_active(device_id, segment_id):
                continue
            try:
                committed = self._catalog.get_segment(segment_id) is not None
            except CatalogError:
                continue
            if committed or now_s - mtime > max_age_s:
                self._staging.discard(device_id, segment_id)
                removed += 1
        return removed


def _close(staged: StagedUpload) -> None:
    try:
        staged.close()
    except OSError as exc:
        raise unavailable("staging write", exc) from exc


def _check_staged_size(staged: StagedUpload, header: Header) -> None:
    """The hash covers the bytes received; this checks they all reached the file (cheap)."""
    try:
        size = staged.size_on_disk()
    except OSError as exc:
        raise unavailable("staging", exc) from exc
    if size != header.size_bytes:
        raise IngestError(
            Code.DATA_LOSS,
            f"staged file holds {size} bytes, expected {header.size_bytes}; nothing committed, "
            "staged bytes discarded",
        )
