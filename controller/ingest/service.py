"""The ingest service: one segment upload from header to catalog row, and resume queries.

No gRPC here (the servicer adapts it): the caller hands in the authenticated device id and
an iterator of `Header | bytes` parts. The order of work is what makes it crash-safe and
idempotent:

    stage (append + hash) -> verify size and SHA-256 -> judge the chain against the catalog
    -> store.put_file(key, staged) -> catalog row -> flag history -> delete the staging

A crash before the row leaves the staged file complete; the agent's retry (QueryOffset says
"all of it", it sends a header and no chunks) re-verifies and re-puts the same bytes under
the same key (an idempotent overwrite) and writes the row. A crash after the row leaves only
a stale staging file, removed by `recover()`. Every refusal is an `IngestError` (rules.py)
and leaves the catalog and the store as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.catalog import (
    CameraRow,
    Catalog,
    CatalogError,
    CatalogUnavailableError,
    DuplicateSegmentError,
    SegmentRow,
)
from controller.clock import Clock
from controller.ingest.rules import (
    ChainVerdict,
    Code,
    Header,
    IngestError,
    Limits,
    Neighbour,
    check_chunk,
    check_complete,
    check_ids,
    decide_chain,
    decide_offset,
    validate_header,
)
from controller.ingest.slots import UploadSlots
from controller.ingest.staging import StagedUpload, Staging
from controller.storage import ObjectStore, StorageError, object_key

log = logging.getLogger("vigil.ingest")

Part = Header | bytes


@dataclass(frozen=True, slots=True)
class Committed:
    """What the agent is told after a successful upload."""

    segment_id: str
    already: bool  # True: it was committed before with the same SHA-256 (nothing changed)
    sha256: str
    chain_ok: bool
    object_key: str


@dataclass(frozen=True, slots=True)
class Offset:
    offset: int
    committed: bool
    sha256: str  # hex, when committed


def _neighbour(row: SegmentRow | None) -> Neighbour | None:
    if row is None:
        return None
    return Neighbour(
        row.segment_id, row.start_us, row.end_us, row.sha256, row.prev_sha256, row.flag
    )


def _unavailable(what: str, exc: Exception) -> IngestError:
    return IngestError(Code.UNAVAILABLE, f"{what} failed, retry later: {exc}")


class IngestService:
    """Thread-safe: one instance serves every upload stream of a controller."""

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        staging: Staging,
        limits: Limits,
        clock: Clock,
        slots: UploadSlots,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._staging = staging
        self._limits = limits
        self._clock = clock
        self.slots = slots

    # --- queries -------------------------------------------------------------------------

    def authorize(self, device_id: str, camera_id: str) -> CameraRow:
        """The camera, if it is registered to `device_id`; NOT_FOUND / PERMISSION_DENIED."""
        try:
            camera = self._catalog.camera(camera_id)
        except CatalogUnavailableError as exc:
            raise _unavailable("catalog lookup", exc) from exc
        if camera is None:
            raise IngestError(Code.NOT_FOUND, f"unknown camera {camera_id!r}: not registered")
        if camera.device_id != device_id:
            raise IngestError(
                Code.PERMISSION_DENIED,
                f"camera {camera_id!r} is not registered to device {device_id!r}",
            )
        return camera

    def _committed(self, segment_id: str) -> SegmentRow | None:
        try:
            return self._catalog.get_segment(segment_id)
        except CatalogUnavailableError as exc:
            raise _unavailable("catalog lookup", exc) from exc

    def query_offset(self, device_id: str, segment_id: str, camera_id: str) -> Offset:
        """How much of a segment the server holds: committed, or the staged byte count."""
        check_ids(segment_id, camera_id)
        self.authorize(device_id, camera_id)
        row = self._committed(segment_id)
        if row is not None:
            if row.camera_id != camera_id:
                raise IngestError(
                    Code.ALREADY_EXISTS,
                    f"segment id {segment_id!r} is already committed for another camera",
                )
            return Offset(row.size_bytes, True, row.sha256)
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
        with self.slots.upload(on_cancel) as activity:
            first = next(parts, None)
            if first is None:
                raise IngestError(Code.INVALID_ARGUMENT, "empty stream: header missing")
            if not isinstance(first, Header):
                raise IngestError(
                    Code.INVALID_ARGUMENT, "chunk before header: the first message must be a header"
                )
            header = validate_header(first, self._limits, self._clock.now_us())
            camera = self.authorize(device_id, header.camera_id)
            done = self._check_existing(device_id, header)
            if done is not None:
                return done
            with self.slots.segment(device_id, header.segment_id):
                held = self._staging.held(device_id, header.segment_id)
                plan = decide_offset(
                    header.offset,
                    None if held is None else held[0],
                    held is not None and held[1].same_segment(header),
                )
                try:
                    staged = self._staging.open(device_id, header, plan)
                except OSError as exc:
                    raise _unavailable("staging", exc) from exc
                try:
                    self._receive(staged, header, parts, activity)
                finally:
                    staged.close()
                try:
                    check_complete(
                        staged.received, header.size_bytes, staged.sha256_hex(), header.sha256
                    )
                except IngestError as exc:
                    if exc.code is Code.DATA_LOSS:
                        self._staging.discard(device_id, header.segment_id)
                    raise
                return self._commit(device_id, camera, header, staged.path)

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
                raise _unavailable("staging write", exc) from exc

    def _check_existing(self, device_id: str, header: Header) -> Committed | None:
        """Same id + same hash: done already. Same id otherwise: a conflict, recorded."""
        row = self._committed(header.segment_id)
        if row is None:
            return None
        if row.sha256 == header.sha256 and row.camera_id == header.camera_id:
            return Committed(row.segment_id, True, row.sha256, row.chain_ok, row.object_key)
        try:
            self._catalog.record_conflict(
                header.segment_id, header.camera_id, device_id, row.sha256, header.sha256
            )
        except CatalogError as exc:
            log.error("could not record conflict on segment %s: %s", header.segment_id, exc)
        log.warning(
            "possible tampering: device %s offered segment %s (camera %s) with sha256 %s, "
            "committed as %s for camera %s",
            device_id,
            header.segment_id,
            header.camera_id,
            header.sha256,
            row.sha256,
            row.camera_id,
        )
        raise IngestError(
            Code.ALREADY_EXISTS,
            f"segment {header.segment_id} is already committed with a different "
            f"{'camera' if row.camera_id != header.camera_id else 'sha256'}; refused and "
            "recorded as a possible tampering",
        )

    def _judge_chain(self, header: Header) -> ChainVerdict:
        try:
            previous = self._catalog.previous_segment(header.camera_id, header.start_us)
            following = self._catalog.next_segment(header.camera_id, header.start_us)
        except CatalogUnavailableError as exc:
            raise _unavailable("catalog lookup", exc) from exc
        return decide_chain(header, _neighbour(previous), _neighbour(following))

    def _commit(self, device_id: str, camera: CameraRow, header: Header, staged: Path) -> Committed:
        # Another replica may have committed it while we were receiving.
        done = self._check_existing(device_id, header)
        if done is not None:
            self._staging.discard(device_id, header.segment_id)
            return done
        try:
            key = object_key(
                camera.county,
                camera.site,
                header.camera_id,
                header.start_us,
                header.segment_id,
                header.container,
            )
        except StorageError as exc:
            raise IngestError(Code.INVALID_ARGUMENT, f"cannot name the object: {exc}") from exc
        verdict = self._judge_chain(header)
        detail = _flag_detail(header, verdict)
        try:
            self._store.put_file(key, staged, header.sha256)
        except StorageError as exc:
            raise _unavailable("object store", exc) from exc
        row = SegmentRow(
            segment_id=header.segment_id,
            camera_id=header.camera_id,
            device_id=device_id,
            start_us=header.start_us,
            duration_us=header.duration_us,
            end_us=header.end_us,
            size_bytes=header.size_bytes,
            sha256=header.sha256,
            prev_sha256=header.prev_sha256,
            object_key=key,
            agent_flags=header.flags,
            chain_ok=verdict.chain_ok,
            flag=str(verdict.flag),
            flag_detail=detail,
            committed_at_us=self._clock.now_us(),
        )
        try:
            self._catalog.add_segment(row)
        except DuplicateSegmentError:
            done = self._check_existing(device_id, header)  # lost a race: same or conflict
            if done is None:
                raise IngestError(Code.ABORTED, "catalog race, retry") from None
            self._staging.discard(device_id, header.segment_id)
            return done
        except CatalogError as exc:
            raise _unavailable("catalog write", exc) from exc
        if not verdict.chain_ok:
            self._record_flag(header, verdict, detail)
        self._staging.discard(device_id, header.segment_id)
        log.info(
            "committed %s camera=%s bytes=%d key=%s%s",
            header.segment_id,
            header.camera_id,
            header.size_bytes,
            key,
            f" flag={verdict.flag}" if verdict.flag else "",
        )
        return Committed(header.segment_id, False, header.sha256, verdict.chain_ok, key)

    def _record_flag(self, header: Header, verdict: ChainVerdict, detail: str) -> None:
        """Keep the flag in the catalog's flag history (it outlives the segment)."""
        try:
            self._catalog.flag_segment(header.segment_id, str(verdict.flag), detail)
        except CatalogError as exc:
            log.error("segment %s: could not record flag history: %s", header.segment_id, exc)
        log.warning(
            "segment %s of camera %s flagged: %s", header.segment_id, header.camera_id, detail
        )

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


def _flag_detail(header: Header, verdict: ChainVerdict) -> str:
    if verdict.chain_ok:
        return ""
    if verdict.flag == "gap":
        return (
            f"prev_sha256 {header.prev_sha256[:16]} names a segment not in the catalog "
            "(a gap before this segment)"
        )
    return (
        f"prev_sha256 {header.prev_sha256[:16] or '(empty)'} contradicts the camera's "
        "neighbouring segments (possible tampering)"
    )
