"""The durable commit queue: verified segments the store could not take yet, committed later.

A segment streamed into a multipart upload is verified (every byte stored, each part checked
by the store, the whole hashed to the header's SHA-256) before its upload is completed. If the
store stops answering in between, those bytes are nevertheless safe at the city: in the
store's parts, with a ledger row in state `verified` saying how to complete them (ledger.py).
The agent is then told ACCEPTED (safe, committed later), so its buffer may evict the segment
like an uploaded one instead of as an unsent loss, and this queue finishes the job on any
replica as soon as the store answers: complete the upload, write the catalog row, delete the
ledger row. The rows live in the database, so the queue survives a kill -9 of the controller
(docs/operations.md, "Commit queue").

`finish` is the same path for an upload that just arrived (its store answers: COMMITTED at
once) and for a queued one (`drain`, every couple of seconds while rows wait).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.ingest.commit import Committed, Committer
from controller.ingest.ledger import Ledger, LedgerError, UploadRow
from controller.ingest.rules import Code, Header, IngestError
from controller.ingest.stream import PROBE_BYTES, Stored, StreamReceiver
from controller.media.probe import MediaInfo
from controller.storage import StorageError
from controller.storage.base import ObjectNotFoundError, StreamingStore

log = logging.getLogger("vigil.ingest")

ProbeBytes = Callable[[str, bytes], MediaInfo]  # (camera id, the segment's first bytes)


class LostUploadError(Exception):
    """A verified upload the store no longer has (aborted behind our back, store wiped)."""


def complete(store: StreamingStore, row: UploadRow) -> None:
    """Make a verified upload's object visible. StorageError while the store is down;
    LostUploadError when the store no longer has it (nor the completed object)."""
    parts = [(p.number, p.etag, p.sha256_b64) for p in row.parts]
    try:
        store.complete_upload(row.object_key, row.upload_id, parts)
        return
    except ObjectNotFoundError:
        pass  # completed before (a crash before the catalog row), or lost
    info = store.head(row.object_key)
    if info is None or info.size != row.header.size_bytes or info.sha256_hex != row.header.sha256:
        raise LostUploadError(
            f"segment {row.segment_id}: multipart upload {row.upload_id[:16]}... is gone "
            "from the store and no complete object is under its key"
        )


class CommitQueue:
    """Completes verified uploads and writes their catalog rows (thread-safe)."""

    def __init__(
        self, receiver: StreamReceiver, committer: Committer, probe_bytes: ProbeBytes
    ) -> None:
        self._receiver = receiver
        self._committer = committer
        self._probe = probe_bytes
        self._store_down = False

    @property
    def ledger(self) -> Ledger:
        return self._receiver.ledger

    def finish(self, device_id: str, header: Header, stored: Stored) -> Committed:
        """Commit what `stored` says is in the store. A multipart upload the store cannot
        complete now stays queued: the answer is then `queued` (ACCEPTED to the agent)."""
        try:
            return self._finish(device_id, header, stored)
        except LostUploadError as exc:
            raise IngestError(Code.UNAVAILABLE, f"{exc}; upload it again") from exc

    def _finish(self, device_id: str, header: Header, stored: Stored) -> Committed:
        row = stored.row
        if row is not None:
            try:
                complete(self._receiver.store, row)
            except StorageError as exc:
                if not self._store_down:
                    log.warning(
                        "segment %s verified but the store cannot complete it now (%s): "
                        "queued, committed when the store answers",
                        header.segment_id,
                        exc,
                    )
                self._store_down = True
                return Committed(header.segment_id, False, header.sha256, True, "", queued=True)
            except LostUploadError:
                self._forget(row)
                raise
        self._store_down = False
        head = stored.head or self._read_head(stored)
        media = self._committer.media(header, self._probe(header.camera_id, head))
        done = self._committer.record(device_id, header, stored.key, media)
        if row is not None:
            self._forget(row)
        return done

    def _read_head(self, stored: Stored) -> bytes:
        """A resumed upload's first bytes were received elsewhere: read them back once."""
        try:
            with self._receiver.store.open_read(stored.key) as f:
                return f.read(PROBE_BYTES)
        except (StorageError, OSError):
            return b""

    def _forget(self, row: UploadRow) -> None:
        try:
            self.ledger.delete(row.segment_id, row.upload_id)
        except LedgerError as exc:  # the next drain finds it committed and deletes it then
            log.warning("segment %s committed; ledger row left for later: %s", row.segment_id, exc)

    def drain(self, busy: Callable[[str, str], bool], limit: int = 100) -> int:
        """Commit queued segments (skipping ones a stream here is handling); how many.
        Stops at the first store failure: the store is still down, try again later."""
        try:
            rows = self.ledger.verified(limit)
        except LedgerError as exc:
            log.warning("commit queue: cannot read the ledger: %s", exc)
            return 0
        done = 0
        for row in rows:
            if busy(row.device_id, row.segment_id):
                continue
            stored = Stored(row.object_key, b"", row)
            try:
                result = self._finish(row.device_id, row.header, stored)
            except LostUploadError as exc:
                log.error("commit queue: LOST, the agent was told it was safe: %s", exc)
                continue
            except IngestError as exc:
                log.warning("commit queue: segment %s not committed: %s", row.segment_id, exc)
                if exc.code is Code.UNAVAILABLE:
                    break
                continue
            if result.queued:
                break
            done += 1
            log.info("commit queue: segment %s committed after the store returned", row.segment_id)
        return done
