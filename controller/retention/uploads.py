"""Aborting abandoned multipart uploads: the staging ingest leaves in the store, bounded.

Ingest streams large segments into S3 multipart uploads (controller/ingest/stream.py); parts
of an upload whose agent never came back (a device replaced, a segment evicted at the edge,
a device opening uploads and dropping them) would stay in the store for ever, invisible and
billed. The sweep aborts, once they are older than the bound (`ingest.staging_ttl_s`):

- uploads the ledger knows as `receiving` and untouched since (their rows go too);
- uploads in the store no ledger row knows (a controller killed between creating an upload
  and recording it; an interrupted `put_file` of another part of the controller).

Never a `verified` row's upload: that is the commit queue, bytes the agent was told are safe
(controller/ingest/commit_queue.py). Per device, ingest itself also keeps the number and bytes
of open uploads within the staging budget (fairness.py), so the bound in time is not the
only one. Idempotent, like the rest of the sweep: an upload already aborted is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from controller.ingest.ledger import Ledger, LedgerError
from controller.storage import ObjectStore, StorageError
from controller.storage.base import StreamingStore

log = logging.getLogger("vigil.controller.retention")


@dataclass
class UploadSweep:
    aborted: int = 0  # uploads with a ledger row
    orphans: int = 0  # uploads without one
    errors: list[str] = field(default_factory=list)


def sweep_uploads(
    store: ObjectStore, ledger: Ledger, now_us: int, max_age_s: float, batch: int = 1000
) -> UploadSweep:
    """Abort multipart uploads abandoned for more than `max_age_s`; never raises."""
    report = UploadSweep()
    if not isinstance(store, StreamingStore):
        return report
    before_us = now_us - int(max_age_s * 1_000_000)
    try:
        for row in ledger.stale(before_us, batch):
            store.abort_upload(row.object_key, row.upload_id)
            ledger.delete(row.segment_id, row.upload_id)
            report.aborted += 1
        old = [u for u in store.list_uploads() if u.initiated_us < before_us]
        for start in range(0, len(old), batch):
            chunk = old[start : start + batch]
            known = ledger.known_upload_ids([u.upload_id for u in chunk])
            for upload in chunk:
                if upload.upload_id not in known:
                    store.abort_upload(upload.key, upload.upload_id)
                    report.orphans += 1
    except (StorageError, LedgerError) as exc:
        report.errors.append(str(exc))
    if report.aborted or report.orphans or report.errors:
        log.info(
            "abandoned multipart uploads: %d aborted, %d without a ledger row aborted%s",
            report.aborted,
            report.orphans,
            f"; error: {report.errors[0]}" if report.errors else "",
        )
    return report
