"""The retention sweep: the imperative shell around plan_retention.

For each camera, page through expired candidates, let the pure planner decide, then delete
in three steps (catalog/retention_queries.py explains why this order is crash-safe):
mark the rows `deleting` -> delete the objects -> delete the rows and record each deletion.
Every run first finishes what an interrupted run left in `deleting`, so a crash, a store
outage or a kill at any point is repaired by simply running the sweep again.

A store error stops the sweep (the store is probably down; hammering it helps nobody): the
deletions finished so far are committed, the rest stay `deleting` for the next run, and the
error is in the report. The sweep is meant to run on one controller at a time (the leader).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from controller.catalog import SEGMENT_STORED, CameraRow, Catalog, CatalogError, SegmentRow
from controller.clock import Clock
from controller.retention.plan import (
    RetentionPlan,
    cutoff_us,
    orphan_deletable,
    plan_retention,
)
from controller.storage import ObjectStore, StorageError

log = logging.getLogger(__name__)

REASON_EXPIRED = "expired"
REASON_ORPHAN = "orphan_object"


@dataclass
class SweepReport:
    """What one sweep did. `complete` is False if it stopped early on an error."""

    started_at_us: int
    finished_at_us: int = 0
    deleted: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    resumed: int = 0  # interrupted deletions finished by this run
    restored: int = 0  # interrupted deletions undone because a hold now covers them
    held: int = 0  # expired segments kept by an active hold (counted per page seen)
    anchors: int = 0  # expired segments kept as their camera's newest
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


class _Stop(Exception):
    """Internal: end the sweep after an error has been recorded in the report."""


def _delete_objects(
    catalog: Catalog,
    store: ObjectStore,
    rows: Sequence[SegmentRow],
    report: SweepReport,
    detail: str,
) -> int:
    """Steps 2 and 3 for rows already marked `deleting`; returns how many were finished."""
    done: list[SegmentRow] = []
    failure: StorageError | None = None
    for row in rows:
        try:
            store.delete(row.object_key)
        except StorageError as exc:
            failure = exc
            break
        done.append(row)
    finished = catalog.finish_deletions(done, REASON_EXPIRED, detail) if done else []
    sizes = {row.segment_id: row.size_bytes for row in done}
    report.deleted += finished
    report.deleted_bytes += sum(sizes[s] for s in finished)
    if failure is not None:
        report.errors.append(f"retention stopped: {failure}")
        raise _Stop from failure
    return len(finished)


def _resume(catalog: Catalog, store: ObjectStore, report: SweepReport, batch: int) -> None:
    """Finish (or, if a hold arrived meanwhile and the object survived, undo) deletions an
    earlier sweep started but did not finish."""
    seen: set[str] = set()
    while rows := catalog.deleting_segments(limit=batch):
        if seen.issuperset(r.segment_id for r in rows):
            report.errors.append("retention stopped: interrupted deletions did not finish")
            raise _Stop
        seen.update(r.segment_id for r in rows)
        restore = {r.segment_id for r in rows if _keep_interrupted(catalog, store, r, report)}
        if restore:
            report.restored += catalog.restore_segments(sorted(restore))
        finish = [r for r in rows if r.segment_id not in restore]
        report.resumed += _delete_objects(
            catalog, store, finish, report, "finished an interrupted deletion"
        )


def _keep_interrupted(
    catalog: Catalog, store: ObjectStore, row: SegmentRow, report: SweepReport
) -> bool:
    if not catalog.is_held(row.segment_id):
        return False
    try:
        return store.size(row.object_key) is not None
    except StorageError as exc:
        report.errors.append(f"retention stopped: {exc}")
        raise _Stop from exc


def camera_plans(
    catalog: Catalog, camera: CameraRow, now_us: int, batch: int
) -> Iterator[RetentionPlan]:
    """The camera's expired candidates, one page at a time, each judged by the planner."""
    cutoff = cutoff_us(now_us, camera.retention_days)
    newest = catalog.newest_segment(camera.camera_id)
    if newest is None or cutoff < 0:
        return
    holds = catalog.holds(camera.camera_id, active_only=True)
    policies = {camera.camera_id: camera.retention_days}
    after: tuple[int, str] | None = None
    while page := catalog.retention_candidates(camera.camera_id, cutoff, after, batch):
        after = (page[-1].start_us, page[-1].segment_id)
        yield plan_retention([*page, newest], policies, holds, now_us)


def _sweep_camera(
    catalog: Catalog,
    store: ObjectStore,
    camera: CameraRow,
    now_us: int,
    report: SweepReport,
    batch: int,
) -> None:
    detail = f"older than {camera.retention_days} days"
    for plan in camera_plans(catalog, camera, now_us, batch):
        report.held += len(plan.held)
        report.anchors += len(plan.anchors)
        if plan.delete:
            marked = catalog.mark_deleting(plan.delete)
            _delete_objects(catalog, store, marked, report, detail)


def preview_retention(
    catalog: Catalog, clock: Clock, batch: int = 500, cameras: Sequence[str] | None = None
) -> dict[str, RetentionPlan]:
    """What a sweep would do now, per camera, changing nothing (for `--dry-run`)."""
    now_us = clock.now_us()
    wanted = None if cameras is None else set(cameras)
    out: dict[str, RetentionPlan] = {}
    for camera in catalog.cameras():
        if wanted is not None and camera.camera_id not in wanted:
            continue
        delete: list[str] = []
        held: list[str] = []
        anchors: list[str] = []
        for plan in camera_plans(catalog, camera, now_us, batch):
            delete += plan.delete
            held += plan.held
            anchors += plan.anchors
        out[camera.camera_id] = RetentionPlan(tuple(delete), tuple(held), tuple(anchors))
    return out


def sweep_retention(
    catalog: Catalog,
    store: ObjectStore,
    clock: Clock,
    batch: int = 500,
    cameras: Sequence[str] | None = None,
) -> SweepReport:
    """Delete expired cloud copies (objects and rows together) and record each deletion.

    `batch` bounds the rows per catalog transaction; `cameras` limits the sweep to some
    cameras (all by default). Never raises for store or database failures: they stop the
    sweep and are listed in `SweepReport.errors`; re-running finishes the job.
    """
    report = SweepReport(started_at_us=clock.now_us())
    now_us = report.started_at_us
    try:
        _resume(catalog, store, report, batch)
        wanted = None if cameras is None else set(cameras)
        for camera in catalog.cameras():
            if wanted is None or camera.camera_id in wanted:
                _sweep_camera(catalog, store, camera, now_us, report, batch)
    except _Stop:
        pass
    except CatalogError as exc:
        report.errors.append(f"retention stopped: {exc}")
    report.finished_at_us = clock.now_us()
    log.info(
        "retention sweep: deleted %d segments (%d bytes), finished %d interrupted, "
        "kept %d held and %d chain anchors, %d errors",
        len(report.deleted),
        report.deleted_bytes,
        report.resumed,
        report.held,
        report.anchors,
        len(report.errors),
    )
    for error in report.errors:
        log.warning("%s", error)
    return report


@dataclass(frozen=True)
class OrphanReport:
    """Objects and rows that do not match, for one camera."""

    camera_id: str
    objects_without_row: tuple[str, ...]
    rows_without_object: tuple[str, ...]  # segment ids of stored rows whose object is gone


def camera_prefix(camera: CameraRow) -> str:
    return f"{camera.county}/{camera.site}/{camera.camera_id}/"


def find_orphans(catalog: Catalog, store: ObjectStore, camera_id: str) -> OrphanReport:
    """Compare one camera's objects with its catalog rows (one listing, one query).

    Rows without objects mean lost data and are only reported, never "repaired"; objects
    without rows (an ingest that crashed between put and commit, or one in flight right
    now) may be removed with `delete_orphan_objects` once they are past retention.
    """
    camera = catalog.camera(camera_id)
    if camera is None:
        raise CatalogError(f"orphan check: camera {camera_id} is unknown")
    rows = catalog.object_keys(camera_id)
    prefix = camera_prefix(camera)
    listed = set(store.list_keys(prefix))
    objects_without_row = tuple(sorted(k for k in listed if k not in rows))
    missing: list[str] = []
    for key, (state, _segment_id) in sorted(rows.items()):
        if state != SEGMENT_STORED or key in listed:
            continue
        if key.startswith(prefix) or store.size(key) is None:
            missing.append(key)
    return OrphanReport(
        camera_id=camera_id,
        objects_without_row=objects_without_row,
        rows_without_object=tuple(sorted(rows[k][1] for k in missing)),
    )


def _has_row(catalog: Catalog, key: str) -> bool:
    """Is there a catalog row for this key? (Keys end in `{segment_id}.{ext}`.)"""
    segment_id = key.rpartition("/")[2].rpartition(".")[0]
    seg = catalog.get_segment(segment_id) if segment_id else None
    return seg is not None and seg.object_key == key


def delete_orphan_objects(
    catalog: Catalog, store: ObjectStore, clock: Clock, report: OrphanReport
) -> list[str]:
    """Delete the orphan objects that are past the camera's retention and not held,
    recording each deletion; returns the keys deleted. StorageError propagates."""
    camera = catalog.camera(report.camera_id)
    if camera is None:
        raise CatalogError(f"orphan cleanup: camera {report.camera_id} is unknown")
    holds = catalog.holds(camera.camera_id, active_only=True)
    now_us = clock.now_us()
    deleted: list[str] = []
    for key in report.objects_without_row:
        if not orphan_deletable(key, camera.camera_id, camera.retention_days, holds, now_us):
            continue
        if _has_row(catalog, key):
            continue  # its row arrived since the check: not an orphan any more
        store.delete(key)
        catalog.record_object_deletion(
            key, camera.camera_id, REASON_ORPHAN, "object had no catalog row"
        )
        deleted.append(key)
    return deleted
