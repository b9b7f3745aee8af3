"""Receiving a segment straight into an S3 store: no staging file, one pass over each byte.

Two shapes, chosen by the segment's declared size against the store's part size:

- **Up to one part: one streamed PUT.** The agent declared the segment's SHA-256 in its
  header, so the PUT carries it as `x-amz-checksum-sha256` and the store verifies the bytes
  as they land: the controller does not hash them at all. A PUT cut short (agent gone,
  controller killed) is discarded by the store; a wrong hash is refused (`BadDigest`): the
  stream ends DATA_LOSS with nothing visible under the key. Resume starts over: what is lost
  is at most one part's worth of the village uplink.
- **Larger: a multipart upload.** Chunks fill a part (bounded memory: one part per upload),
  each part goes up with its own `x-amz-checksum-sha256` (the store verifies it), and the
  segment's running SHA-256 (sha.py, the one hash of the segment) is saved with the part in
  the ledger (ledger.py). Any replica resumes at a part boundary from the ledger, checked
  against ListParts. At the end: all bytes there and the hash equal to the header's, else the
  upload is aborted (DATA_LOSS); then the row is `verified` (the durable commit queue) and the
  service completes the upload, which is when the object appears, whole, under its key.

Back-pressure: every PUT write blocks while the store is slow; the worker thread then stops
reading the agent's stream and gRPC flow control stops the agent. Nothing is buffered beyond
the part being filled.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from controller.clock import Clock
from controller.ingest.checksum_probe import store_refuses_bad_checksums
from controller.ingest.ledger import RECEIVING, VERIFIED, Ledger, LedgerError, StoredPart, UploadRow
from controller.ingest.rules import Code, Header, IngestError, Limits, check_chunk
from controller.ingest.sha import ResumableSha256
from controller.storage import StorageError
from controller.storage.base import (
    ChecksumMismatchError,
    ObjectWriter,
    StreamingStore,
)
from controller.storage.s3_stream import sha256_b64

PROBE_BYTES = 256 * 1024  # the media probe reads no more (media/probe.py)
Part = Header | bytes | memoryview


@dataclass(frozen=True, slots=True)
class Stored:
    """Every byte is in the store and verified; `row` set: a multipart upload still to
    complete (ledger state `verified`); `head`: the segment's first bytes, for the probe."""

    key: str
    head: bytes
    row: UploadRow | None


def _unavailable(what: str, exc: Exception) -> IngestError:
    return IngestError(Code.UNAVAILABLE, f"{what} failed, retry later: {exc}")


def _ledger(fn: Callable[[], object], what: str = "ingest ledger") -> None:
    try:
        fn()
    except LedgerError as exc:
        raise _unavailable(what, exc) from exc


class StreamReceiver:
    """Uploads into a `StreamingStore` (thread-safe; one instance per controller)."""

    def __init__(self, store: StreamingStore, ledger: Ledger, clock: Clock, limits: Limits) -> None:
        self.store = store
        self.ledger = ledger
        self._clock = clock
        self._limits = limits
        self._lock = threading.Lock()
        self._store_checks: bool | None = None

    def store_checks(self) -> bool:
        """Whether the store refuses bytes that do not match their checksum (asked once)."""
        with self._lock:
            known = self._store_checks
        if known is None:
            known = store_refuses_bad_checksums(self.store)
            with self._lock:
                self._store_checks = known
        return known

    @property
    def part_size(self) -> int:
        return self.store.part_size

    def row(self, segment_id: str) -> UploadRow | None:
        try:
            return self.ledger.get(segment_id)
        except LedgerError as exc:
            raise _unavailable("ingest ledger", exc) from exc

    def held(self, device_id: str, segment_id: str, camera_id: str) -> int:
        """Bytes of the segment the store holds for resume (QueryOffset)."""
        row = self.row(segment_id)
        if row is None or row.device_id != device_id or row.camera_id != camera_id:
            return 0
        return row.header.size_bytes if row.state == VERIFIED else row.stored_bytes

    def discard(self, row: UploadRow) -> None:
        """Abort the upload (its parts go) and forget it; never for a verified row."""
        try:
            self.store.abort_upload(row.object_key, row.upload_id)
        except StorageError as exc:
            raise _unavailable("object store", exc) from exc
        _ledger(lambda: self.ledger.delete(row.segment_id, row.upload_id))

    # --- receiving ---------------------------------------------------------------------

    def receive(
        self,
        device_id: str,
        header: Header,
        key: str,
        parts: Iterator[Part],
        activity: Callable[[], None],
    ) -> Stored:
        if header.size_bytes <= self.part_size:
            if header.offset != 0:
                raise IngestError(
                    Code.ABORTED,
                    f"offset {header.offset} requested but the server holds 0 bytes of this "
                    "segment; resume from 0",
                )
            return self._single(header, key, parts, activity)
        return self._multipart(device_id, header, key, parts, activity)

    def _chunks(
        self, header: Header, start: int, parts: Iterator[Part], activity: Callable[[], None]
    ) -> Iterator[bytes | memoryview]:
        received = start
        for part in parts:
            activity()
            if isinstance(part, Header):
                raise IngestError(
                    Code.INVALID_ARGUMENT,
                    f"second header in one stream (the server holds {start} bytes)",
                )
            check_chunk(received, len(part), header.size_bytes, self._limits.max_chunk_bytes)
            received += len(part)
            yield part
        if received < header.size_bytes:
            raise IngestError(
                Code.INVALID_ARGUMENT,
                f"stream ended after {received} of {header.size_bytes} bytes (fewer than "
                f"declared); the server holds {start}: resume from there",
            )

    def _single(
        self, header: Header, key: str, parts: Iterator[Part], activity: Callable[[], None]
    ) -> Stored:
        try:
            own = None if self.store_checks() else hashlib.sha256()
            writer = self.store.open_put(key, header.size_bytes, header.sha256)
        except StorageError as exc:
            raise _unavailable("object store", exc) from exc
        head = bytearray()
        held: bytes | memoryview = b""  # with `own`: the last chunk waits for the hash
        try:
            for chunk in self._chunks(header, 0, parts, activity):
                if len(head) < PROBE_BYTES:
                    head += chunk[: PROBE_BYTES - len(head)]
                if own is None:
                    writer.write(chunk)
                    continue
                own.update(chunk)
                if held:
                    writer.write(held)
                held = chunk
            if own is not None:
                if own.hexdigest() != header.sha256:
                    raise _mismatch(header, "the controller")
                writer.write(held)
            writer.finish()
        except ChecksumMismatchError as exc:
            raise _mismatch(header, "the object store") from exc
        except StorageError as exc:
            raise _unavailable("object store", exc) from exc
        finally:
            writer.abort()  # no-op after finish(); drops a PUT cut short
        return Stored(key, bytes(head), None)

    def _start(self, device_id: str, header: Header, key: str) -> UploadRow:
        """The ledger row to write into: the one to resume, or a new upload."""
        row = self.row(header.segment_id)
        if row is not None and (row.device_id != device_id or not row.header.same_segment(header)):
            if row.state == VERIFIED or header.offset != 0 or row.device_id != device_id:
                raise IngestError(
                    Code.ABORTED,
                    f"segment {header.segment_id} is held for another upload; retry later",
                )
            self.discard(row)
            row = None
        if row is None:
            if header.offset != 0:
                raise IngestError(
                    Code.ABORTED,
                    f"offset {header.offset} requested but the server holds 0 bytes of this "
                    "segment; resume from 0",
                )
            return self._create(device_id, header, key)
        if row.state == VERIFIED:
            return row
        return self._resume_at(row, header.offset)

    def _create(self, device_id: str, header: Header, key: str) -> UploadRow:
        try:
            upload_id = self.store.create_upload(key, header.sha256)
        except StorageError as exc:
            raise _unavailable("object store", exc) from exc
        now = self._clock.now_us()
        row = UploadRow(
            header.segment_id,
            device_id,
            header.camera_id,
            key,
            upload_id,
            replace(header, offset=0, lease_id=""),
            self.part_size,
            (),
            RECEIVING,
            now,
            now,
        )
        try:
            created = self.ledger.insert(row)
        except LedgerError as exc:
            self._abort_quietly(key, upload_id)
            raise _unavailable("ingest ledger", exc) from exc
        if not created:
            self._abort_quietly(key, upload_id)
            raise IngestError(
                Code.ABORTED, f"segment {header.segment_id} is being uploaded by another stream"
            )
        return row

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self.store.abort_upload(key, upload_id)
        except StorageError:
            pass  # the sweep aborts uploads no ledger row knows

    def _resume_at(self, row: UploadRow, offset: int) -> UploadRow:
        """Keep the parts before `offset` (a part boundary the store confirms)."""
        marks = [0]
        for part in row.parts:
            marks.append(marks[-1] + part.size)
        if offset not in marks:
            raise IngestError(
                Code.ABORTED,
                f"offset {offset} requested but the server holds {row.stored_bytes} bytes "
                f"in parts; resume from {row.stored_bytes}",
            )
        keep = marks.index(offset)
        if keep:
            try:
                listed = self.store.list_parts(row.object_key, row.upload_id)
            except StorageError as exc:
                raise _unavailable("object store", exc) from exc
            if listed is None:  # aborted (the sweep) or lost: start over
                _ledger(lambda: self.ledger.delete(row.segment_id, row.upload_id))
                raise IngestError(
                    Code.ABORTED, "the stored parts of this segment are gone; resume from 0"
                )
            there = {(p.number, p.size, p.etag.strip('"')) for p in listed}
            confirmed = 0
            for part in row.parts[:keep]:
                if (part.number, part.size, part.etag.strip('"')) not in there:
                    break
                confirmed += 1
            if confirmed < keep:
                self._truncate(row, confirmed)
                held = marks[confirmed]
                raise IngestError(
                    Code.ABORTED,
                    f"the store holds {held} bytes of this segment; resume from {held}",
                )
        if keep < len(row.parts):
            row = self._truncate(row, keep)
        return row

    def _truncate(self, row: UploadRow, keep: int) -> UploadRow:
        return self._store_parts(row, row.parts[:keep])

    def _store_parts(self, row: UploadRow, parts: tuple[StoredPart, ...]) -> UploadRow:
        """Record the upload's part list in the shared ledger (compare-and-set on the row)."""
        now = self._clock.now_us()
        try:
            ok = self.ledger.set_parts(row, parts, now)
        except LedgerError as exc:
            raise _unavailable("ingest ledger", exc) from exc
        if not ok:
            raise IngestError(Code.ABORTED, "another stream changed this upload; retry")
        return replace(row, parts=parts, updated_us=now)

    def _multipart(
        self,
        device_id: str,
        header: Header,
        key: str,
        parts: Iterator[Part],
        activity: Callable[[], None],
    ) -> Stored:
        row = self._start(device_id, header, key)
        if row.state == VERIFIED:  # every byte is stored: only a header-only stream fits
            for _ in self._chunks(header, header.size_bytes, parts, activity):
                pass
            return Stored(row.object_key, b"", row)
        start = row.stored_bytes
        sha = ResumableSha256()
        if row.parts:
            sha = ResumableSha256.from_state(row.parts[-1].sha_state)
        head = bytearray()
        pending: list[memoryview] = []
        filled = 0
        part_size = row.part_size
        for chunk in self._chunks(header, start, parts, activity):
            if start == 0 and len(head) < PROBE_BYTES:
                head += chunk[: PROBE_BYTES - len(head)]
            view = memoryview(chunk)
            at = 0
            while at < len(chunk):
                end = min(len(chunk), at + part_size - filled)
                sha.update(chunk, at, end)
                pending.append(view[at:end])
                filled += end - at
                at = end
                if filled == part_size:
                    row = self._put_part(row, pending, filled, sha)
                    pending, filled = [], 0
            if filled and sha.length == header.size_bytes:  # the last part: store it now
                row = self._put_part(row, pending, filled, sha)
                pending, filled = [], 0
        if filled:
            row = self._put_part(row, pending, filled, sha)
        if sha.hexdigest() != header.sha256:
            self.discard(row)
            raise _mismatch(header, "the controller")
        try:
            verified = self.ledger.mark_verified(row, self._clock.now_us())
        except LedgerError as exc:
            raise _unavailable("ingest ledger", exc) from exc
        if not verified:
            raise IngestError(Code.ABORTED, "another stream changed this upload; retry")
        return Stored(row.object_key, bytes(head), replace(row, state=VERIFIED))

    def _put_part(
        self, row: UploadRow, pieces: list[memoryview], size: int, sha: ResumableSha256
    ) -> UploadRow:
        number = len(row.parts) + 1
        part_hash = hashlib.sha256()
        for piece in pieces:
            part_hash.update(piece)
        part_hex = part_hash.hexdigest()
        # The segment's state at the part's end: only a full part ends on a 64-byte mark;
        # the last part's state is never needed (nothing follows it).
        state = sha.state() if sha.length % 64 == 0 else ""
        writer: ObjectWriter | None = None
        try:
            writer = self.store.open_put(
                row.object_key, size, part_hex, part=(row.upload_id, number)
            )
            for piece in pieces:
                writer.write(piece)
            answer = writer.finish()
        except StorageError as exc:  # a checksum refused here is damage in transit: retry
            raise _unavailable("object store", exc) from exc
        finally:
            if writer is not None:
                writer.abort()
        stored = StoredPart(number, size, sha256_b64(part_hex), answer.get("etag", ""), state)
        return self._store_parts(row, (*row.parts, stored))


def _mismatch(header: Header, where: str) -> IngestError:
    return IngestError(
        Code.DATA_LOSS,
        f"sha256 mismatch: the bytes do not hash to {header.sha256} (found by {where}); "
        "nothing committed, nothing kept",
    )
