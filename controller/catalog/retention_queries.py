"""Holds, and the catalog side of cloud retention.

A retention sweep removes a segment in three steps so that a crash at any point leaves
nothing inconsistent that a re-run cannot finish (see controller/retention/sweep.py):

1. `mark_deleting`: stored -> deleting, in one transaction, and only for segments that no
   active hold covers at that moment (the hold check is repeated inside the UPDATE itself).
   A deleting segment is hidden from range queries: its object may already be gone.
2. the sweep deletes the object (idempotent).
3. `finish_deletions`: the row is deleted and a RetentionRecord written, in one transaction.

A row is therefore never deleted before its object, and an object is deleted only after its
row says so; half-done deletions are found again with `deleting_segments`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlmodel import col

from controller.catalog.base import CatalogBase, chunks, segment_from
from controller.catalog.errors import (
    InvalidInputError,
    UnknownCameraError,
    check_id,
    check_range,
    check_text,
    check_us,
)
from controller.catalog.media import delete_media
from controller.catalog.models import (
    SEGMENT_DELETING,
    SEGMENT_STORED,
    Camera,
    Hold,
    HoldRow,
    RetentionRecord,
    RetentionRecordRow,
    Segment,
    SegmentRow,
)

MAX_BATCH = 10_000


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise InvalidInputError(f"limit {limit!r} is not 1..{MAX_BATCH}")
    return limit


def _held(segment: Any = Segment) -> Any:
    """SQL: an active hold on the segment's camera overlaps the segment."""
    return exists().where(
        col(Hold.camera_id) == segment.camera_id,
        col(Hold.released_at_us).is_(None),
        col(Hold.start_us) < segment.end_us,
        col(Hold.end_us) > segment.start_us,
    )


def _record(row: SegmentRow, reason: str, detail: str, now_us: int) -> dict[str, Any]:
    return {
        "segment_id": row.segment_id,
        "camera_id": row.camera_id,
        "object_key": row.object_key,
        "start_us": row.start_us,
        "end_us": row.end_us,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "reason": reason,
        "detail": detail,
        "deleted_at_us": now_us,
    }


class RetentionCatalog(CatalogBase):
    """Holds and retention bookkeeping (mixed into Catalog)."""

    # --- holds -----------------------------------------------------------------------------

    def add_hold(self, camera_id: str, start_us: int, end_us: int, case_id: str) -> int:
        """Keep [start_us, end_us) of `camera_id` until released; returns the hold id."""
        check_id(camera_id, "camera_id")
        check_range(start_us, end_us)
        check_id(case_id, "case_id")
        with self._write("add hold") as conn:
            known = conn.execute(
                select(col(Camera.camera_id)).where(col(Camera.camera_id) == camera_id)
            ).first()
            if known is None:
                raise UnknownCameraError(f"hold for case {case_id}: camera {camera_id} unknown")
            result = conn.execute(
                insert(Hold).values(
                    camera_id=camera_id,
                    start_us=start_us,
                    end_us=end_us,
                    case_id=case_id,
                    created_at_us=self._clock.now_us(),
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def release_hold(self, hold_id: int) -> bool:
        """Release an active hold; False if there is no such active hold (nothing changes)."""
        if isinstance(hold_id, bool) or not isinstance(hold_id, int):
            raise InvalidInputError(f"hold id {hold_id!r} is not an integer")
        with self._write("release hold") as conn:
            result = conn.execute(
                update(Hold)
                .where(col(Hold.id) == hold_id, col(Hold.released_at_us).is_(None))
                .values(released_at_us=self._clock.now_us())
            )
            return result.rowcount == 1

    def holds(
        self, camera_id: str | None = None, active_only: bool = True, case_id: str | None = None
    ) -> list[HoldRow]:
        query = select(Hold).order_by(col(Hold.id))
        if camera_id is not None:
            query = query.where(col(Hold.camera_id) == camera_id)
        if case_id is not None:
            query = query.where(col(Hold.case_id) == case_id)
        if active_only:
            query = query.where(col(Hold.released_at_us).is_(None))
        with self._read("list holds") as conn:
            rows = conn.execute(query).all()
        return [HoldRow.model_validate(dict(r._mapping)) for r in rows]

    # --- retention -------------------------------------------------------------------------

    def retention_candidates(
        self,
        camera_id: str,
        cutoff_us: int,
        after: tuple[int, str] | None = None,
        limit: int = 500,
    ) -> list[SegmentRow]:
        """Stored segments of the camera ending at or before `cutoff_us`, oldest first,
        after the keyset cursor `after` = (start_us, segment_id) of the previous page."""
        check_us(cutoff_us, "cutoff_us")
        _check_limit(limit)
        query = select(Segment).where(
            col(Segment.camera_id) == camera_id,
            col(Segment.start_us) <= cutoff_us,
            col(Segment.end_us) <= cutoff_us,
            col(Segment.state) == SEGMENT_STORED,
        )
        if after is not None:
            start, segment_id = after
            query = query.where(
                col(Segment.start_us) >= start,
                or_(
                    col(Segment.start_us) > start,
                    and_(col(Segment.start_us) == start, col(Segment.segment_id) > segment_id),
                ),
            )
        query = query.order_by(col(Segment.start_us), col(Segment.segment_id)).limit(limit)
        with self._read("retention candidates") as conn:
            rows = conn.execute(query).all()
        return [segment_from(r._mapping) for r in rows]

    def newest_segment(self, camera_id: str) -> SegmentRow | None:
        """The camera's latest segment in any state (the anchor of its hash chain)."""
        query = (
            select(Segment)
            .where(col(Segment.camera_id) == camera_id)
            .order_by(col(Segment.start_us).desc(), col(Segment.segment_id).desc())
            .limit(1)
        )
        with self._read("newest segment") as conn:
            row = conn.execute(query).first()
        return None if row is None else segment_from(row._mapping)

    def mark_deleting(self, segment_ids: Sequence[str]) -> list[SegmentRow]:
        """Step 1: stored -> deleting for the ids no active hold covers; returns those rows."""
        marked: list[SegmentRow] = []
        with self._write("mark deleting") as conn:
            for chunk in chunks(list(segment_ids)):
                result = conn.execute(
                    update(Segment)
                    .where(
                        col(Segment.segment_id).in_(chunk),
                        col(Segment.state) == SEGMENT_STORED,
                        ~_held(),
                    )
                    .values(state=SEGMENT_DELETING)
                    .returning(*Segment.__table__.columns)  # type: ignore[attr-defined]
                )
                marked += [segment_from(r._mapping) for r in result.all()]
        return sorted(marked, key=lambda r: (r.start_us, r.segment_id))

    def deleting_segments(self, limit: int = 500) -> list[SegmentRow]:
        """Segments left in `deleting` by an interrupted sweep."""
        _check_limit(limit)
        query = (
            select(Segment)
            .where(col(Segment.state) == SEGMENT_DELETING)
            .order_by(col(Segment.start_us), col(Segment.segment_id))
            .limit(limit)
        )
        with self._read("deleting segments") as conn:
            rows = conn.execute(query).all()
        return [segment_from(r._mapping) for r in rows]

    def is_held(self, segment_id: str) -> bool:
        """Does an active hold cover this segment right now?"""
        with self._read("hold check") as conn:
            found = conn.execute(
                select(col(Segment.segment_id)).where(
                    col(Segment.segment_id) == segment_id, _held()
                )
            ).first()
        return found is not None

    def restore_segments(self, segment_ids: Sequence[str]) -> int:
        """deleting -> stored (an interrupted deletion whose object still exists and that
        a hold now covers); returns how many rows were restored."""
        restored = 0
        with self._write("restore segments") as conn:
            for chunk in chunks(list(segment_ids)):
                result = conn.execute(
                    update(Segment)
                    .where(
                        col(Segment.segment_id).in_(chunk),
                        col(Segment.state) == SEGMENT_DELETING,
                    )
                    .values(state=SEGMENT_STORED)
                )
                restored += result.rowcount
        return restored

    def finish_deletions(
        self, rows: Sequence[SegmentRow], reason: str, detail: str = ""
    ) -> list[str]:
        """Step 3: delete `deleting` rows whose objects are gone and record each deletion,
        in one transaction. Returns the ids actually deleted (another sweeper may have
        finished some already; those are not recorded twice)."""
        check_id(reason, "reason")
        check_text(reason, "reason", 32)
        check_text(detail, "detail", 1024)
        by_id = {row.segment_id: row for row in rows}
        now = self._clock.now_us()
        deleted: list[str] = []
        with self._write("finish deletions") as conn:
            for chunk in chunks(list(by_id)):
                result = conn.execute(
                    delete(Segment)
                    .where(
                        col(Segment.segment_id).in_(chunk),
                        col(Segment.state) == SEGMENT_DELETING,
                    )
                    .returning(col(Segment.segment_id))
                )
                gone = list(result.scalars().all())
                delete_media(conn, gone)
                if gone:
                    conn.execute(
                        insert(RetentionRecord),
                        [_record(by_id[s], reason, detail, now) for s in gone],
                    )
                deleted += gone
        return deleted

    def record_object_deletion(
        self, object_key: str, camera_id: str, reason: str, detail: str = ""
    ) -> None:
        """Record the deletion of an object that had no catalog row (an orphan)."""
        check_text(object_key, "object_key", 1024)
        check_id(reason, "reason")
        check_text(reason, "reason", 32)
        name = object_key.rpartition("/")[2]
        with self._write("record object deletion") as conn:
            conn.execute(
                insert(RetentionRecord).values(
                    segment_id=name.rpartition(".")[0] or name,
                    camera_id=camera_id,
                    object_key=object_key,
                    start_us=0,
                    end_us=0,
                    size_bytes=0,
                    sha256="",
                    reason=reason,
                    detail=detail,
                    deleted_at_us=self._clock.now_us(),
                )
            )

    def retention_records(
        self, camera_id: str | None = None, limit: int = MAX_BATCH
    ) -> list[RetentionRecordRow]:
        """What retention deleted, oldest first."""
        _check_limit(limit)
        query = select(RetentionRecord).order_by(col(RetentionRecord.id)).limit(limit)
        if camera_id is not None:
            query = query.where(col(RetentionRecord.camera_id) == camera_id)
        with self._read("retention records") as conn:
            rows = conn.execute(query).all()
        return [RetentionRecordRow.model_validate(dict(r._mapping)) for r in rows]

    def object_keys(self, camera_id: str) -> dict[str, tuple[str, str]]:
        """object_key -> (state, segment_id) for every row of one camera (orphan checks)."""
        query = select(col(Segment.object_key), col(Segment.state), col(Segment.segment_id)).where(
            col(Segment.camera_id) == camera_id
        )
        with self._read("object keys") as conn:
            return {key: (state, sid) for key, state, sid in conn.execute(query).all()}
