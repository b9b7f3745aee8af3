"""The catalog: devices, cameras and the segments stored for them, with their flags.

Plain data in, plain data out (`*Row` models); the database stays behind this class. Each
public method is one transaction. On SQLite, write transactions start with BEGIN IMMEDIATE
so concurrent writers queue on the busy timeout instead of failing on a lock upgrade.
Holds and the retention bookkeeping live in `RetentionCatalog` (retention_queries.py);
`Catalog` inherits them so callers hold one object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from controller.catalog import commit_statements as sq
from controller.catalog.accounting import rollup_segments
from controller.catalog.base import chunks, segment_from
from controller.catalog.errors import (
    CatalogError,
    DuplicateSegmentError,
    InvalidInputError,
    UnknownCameraError,
    UnknownDeviceError,
    UnknownSegmentError,
    check_batch,
    check_id,
    check_range,
    check_resource_class,
    check_retention_days,
    check_sha256,
    check_text,
    check_us,
)
from controller.catalog.media import MediaCatalog, insert_media
from controller.catalog.models import (
    SEGMENT_STORED,
    Camera,
    CameraRow,
    ConflictRow,
    Device,
    DeviceRow,
    FlagRow,
    Segment,
    SegmentConflict,
    SegmentFlag,
    SegmentMediaRow,
    SegmentRow,
)
from controller.catalog.retention_queries import RetentionCatalog

MAX_RANGE_LIMIT = 100_000


def range_query(
    camera_id: str, start_us: int, end_us: int, max_duration_us: int, limit: int
) -> Any:
    """Segments of one camera overlapping [start_us, end_us), oldest first.

    A segment overlaps when start < end_us and end > start_us. The second condition alone is
    not an index range, so it is bounded with the camera's longest segment: end = start +
    duration <= start + max_duration, hence start > start_us - max_duration. The whole query
    is then one range scan of ix_segment_camera_start.
    """
    seg = Segment
    return (
        select(seg)
        .where(
            col(seg.camera_id) == camera_id,
            col(seg.start_us) > start_us - max_duration_us - 1,
            col(seg.start_us) < end_us,
            col(seg.end_us) > start_us,
            col(seg.state) == SEGMENT_STORED,
        )
        .order_by(col(seg.start_us), col(seg.segment_id))
        .limit(limit)
    )


class Catalog(RetentionCatalog, MediaCatalog):
    """Registry, segments, flags and conflicts; holds and retention come from RetentionCatalog,
    per-segment media from MediaCatalog."""

    # --- devices and cameras -------------------------------------------------------------

    def upsert_device(self, device_id: str, county: str, site: str, kind: str) -> None:
        check_id(device_id, "device_id")
        check_id(county, "county")
        check_id(site, "site")
        check_id(kind, "kind")
        check_text(kind, "kind", 32)
        now = self._clock.now_us()
        values = {
            "device_id": device_id,
            "county": county,
            "site": site,
            "kind": kind,
            "created_at_us": now,
            "updated_at_us": now,
        }
        with self._write("upsert device") as conn:
            self._upsert(conn, Device, values, "device_id")

    def upsert_camera(
        self,
        camera_id: str,
        device_id: str,
        retention_days: int = 30,
        resource_class: str = "II",
    ) -> None:
        check_id(camera_id, "camera_id")
        check_id(device_id, "device_id")
        check_retention_days(retention_days)
        check_resource_class(resource_class)
        now = self._clock.now_us()
        values = {
            "camera_id": camera_id,
            "device_id": device_id,
            "retention_days": retention_days,
            "resource_class": resource_class,
            "created_at_us": now,
            "updated_at_us": now,
        }
        with self._write("upsert camera") as conn:
            known = conn.execute(
                select(col(Device.device_id)).where(col(Device.device_id) == device_id)
            ).first()
            if known is None:
                raise UnknownDeviceError(f"camera {camera_id}: device {device_id} is unknown")
            self._upsert(conn, Camera, values, "camera_id")

    def device(self, device_id: str) -> DeviceRow | None:
        with self._read("get device") as conn:
            row = conn.execute(select(Device).where(col(Device.device_id) == device_id)).first()
        return None if row is None else DeviceRow.model_validate(dict(row._mapping))

    def devices(self) -> list[DeviceRow]:
        with self._read("list devices") as conn:
            rows = conn.execute(select(Device).order_by(col(Device.device_id))).all()
        return [DeviceRow.model_validate(dict(r._mapping)) for r in rows]

    def _camera_select(self) -> Any:
        return sq.CAMERAS

    def camera(self, camera_id: str) -> CameraRow | None:
        with self._read("get camera") as conn:
            row = conn.execute(sq.CAMERA_BY_ID, {"camera": camera_id}).first()
        return None if row is None else CameraRow.model_validate(dict(row._mapping))

    def cameras(self) -> list[CameraRow]:
        with self._read("list cameras") as conn:
            rows = conn.execute(self._camera_select().order_by(col(Camera.camera_id))).all()
        return [CameraRow.model_validate(dict(r._mapping)) for r in rows]

    # --- segments --------------------------------------------------------------------------

    def get_segment(self, segment_id: str) -> SegmentRow | None:
        """The segment in any state (a `deleting` one is being removed by retention)."""
        with self._read("get segment") as conn:
            row = conn.execute(select(Segment).where(col(Segment.segment_id) == segment_id)).first()
        return None if row is None else segment_from(row._mapping)

    def previous_segment(self, camera_id: str, before_start_us: int) -> SegmentRow | None:
        """The camera's latest segment starting before `before_start_us` (the chain link)."""
        check_us(before_start_us, "before_start_us")
        query = (
            select(Segment)
            .where(col(Segment.camera_id) == camera_id, col(Segment.start_us) < before_start_us)
            .order_by(col(Segment.start_us).desc(), col(Segment.segment_id).desc())
            .limit(1)
        )
        with self._read("previous segment") as conn:
            row = conn.execute(query).first()
        return None if row is None else segment_from(row._mapping)

    def next_segment(self, camera_id: str, after_start_us: int) -> SegmentRow | None:
        """The camera's earliest segment starting after `after_start_us`."""
        check_us(after_start_us, "after_start_us")
        query = (
            select(Segment)
            .where(col(Segment.camera_id) == camera_id, col(Segment.start_us) > after_start_us)
            .order_by(col(Segment.start_us), col(Segment.segment_id))
            .limit(1)
        )
        with self._read("next segment") as conn:
            row = conn.execute(query).first()
        return None if row is None else segment_from(row._mapping)

    def add_segment(self, row: SegmentRow, media: SegmentMediaRow | None = None) -> None:
        """Store one segment row, and its media facts if given (one commit).
        DuplicateSegmentError if the id exists."""
        self.add_segments([row], [] if media is None else [media])

    def add_segments(
        self, rows: Sequence[SegmentRow], media: Sequence[SegmentMediaRow] = ()
    ) -> None:
        """Store many rows in one transaction: all of them, or (on any error) none.

        The camera must be registered (UnknownCameraError) and no id may exist already
        (DuplicateSegmentError naming the first one found). `committed_at_us` 0 is stamped
        with the catalog's clock; `state` is always `stored`. `media` rows (for some or all of
        the segments) are written in the same transaction.
        """
        rows = list(rows)
        if not rows:
            return
        check_batch(rows)
        now = self._clock.now_us()
        values = [
            row.model_dump()
            | {"committed_at_us": row.committed_at_us or now, "state": SEGMENT_STORED}
            for row in rows
        ]
        longest: dict[str, int] = {}
        for row in rows:
            longest[row.camera_id] = max(longest.get(row.camera_id, 0), row.duration_us)
        ids = [row.segment_id for row in rows]
        batch = set(ids)
        if any(m.segment_id not in batch for m in media):
            raise InvalidInputError("media given for a segment that is not in the batch")
        try:
            with self._write("add segments") as conn:
                known = self._check_new(conn, ids, sorted(longest))
                conn.execute(sq.INSERT_SEGMENT, values)
                insert_media(conn, media)
                rollup_segments(conn, rows, now, media)  # the hourly accounting, same transaction
                longer = [
                    {"camera": camera_id, "duration": duration}
                    for camera_id, duration in longest.items()
                    if duration > known[camera_id]
                ]
                if longer:
                    conn.execute(sq.RAISE_MAX_DURATION, longer)
        except CatalogError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # lost a race with another replica
                raise DuplicateSegmentError(ids[0], f"add segments: {exc}") from exc
            raise

    def _check_new(
        self, conn: Connection, ids: Sequence[str], cameras: Sequence[str]
    ) -> dict[str, int]:
        """Every camera registered and no id stored yet; camera id -> its longest duration."""
        found = {
            r.camera_id: int(r.max_duration_us)
            for r in conn.execute(sq.CAMERAS_MAX_DURATION, {"ids": list(cameras)})
        }
        missing = [c for c in cameras if c not in found]
        if missing:
            raise UnknownCameraError(f"camera {missing[0]} is not registered")
        for chunk in chunks(ids):
            existing = conn.execute(sq.ANY_SEGMENT, {"ids": chunk}).scalars().first()
            if existing is not None:
                raise DuplicateSegmentError(existing)
        return found

    def segments_in_range(
        self, camera_id: str, start_us: int, end_us: int, limit: int = MAX_RANGE_LIMIT
    ) -> list[SegmentRow]:
        """Stored segments of `camera_id` overlapping [start_us, end_us), oldest first."""
        check_range(start_us, end_us)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_RANGE_LIMIT
        ):
            raise InvalidInputError(f"limit {limit!r} is not 1..{MAX_RANGE_LIMIT}")
        with self._read("segments in range") as conn:
            max_duration = conn.execute(
                select(col(Camera.max_duration_us)).where(col(Camera.camera_id) == camera_id)
            ).scalar()
            if max_duration is None:
                return []
            rows = conn.execute(
                range_query(camera_id, start_us, end_us, int(max_duration), limit)
            ).all()
        return [segment_from(r._mapping) for r in rows]

    def count_segments(self, camera_id: str | None = None) -> int:
        query = select(func.count()).select_from(Segment)
        if camera_id is not None:
            query = query.where(col(Segment.camera_id) == camera_id)
        with self._read("count segments") as conn:
            return int(conn.execute(query).scalar_one())

    # --- flags and conflicts ---------------------------------------------------------------

    def flag_segment(self, segment_id: str, flag: str, detail: str) -> None:
        """Mark a stored segment (chain_break, gap, ...) and keep the flag in its history.

        A chain_break also clears `chain_ok`. UnknownSegmentError if the id is not stored.
        """
        check_id(segment_id, "segment_id")
        check_id(flag, "flag")
        check_text(flag, "flag", 32)
        check_text(detail, "detail", 1024)
        with self._write("flag segment") as conn:
            camera_id = conn.execute(
                select(col(Segment.camera_id)).where(col(Segment.segment_id) == segment_id)
            ).scalar()
            if camera_id is None:
                raise UnknownSegmentError(f"segment {segment_id} is not in the catalog")
            changes: dict[str, Any] = {"flag": flag, "flag_detail": detail}
            if flag == "chain_break":
                changes["chain_ok"] = False
            conn.execute(
                update(Segment).where(col(Segment.segment_id) == segment_id).values(**changes)
            )
            conn.execute(
                insert(SegmentFlag).values(
                    segment_id=segment_id,
                    camera_id=camera_id,
                    flag=flag,
                    detail=detail,
                    flagged_at_us=self._clock.now_us(),
                )
            )

    def clear_flag(self, segment_id: str) -> bool:
        """Clear a stored segment's current flag: later evidence proved its chain link.

        Ingest calls it when a late-arriving segment turns out to be the missing predecessor
        a `gap` flag was waiting for. `flag` and `flag_detail` become empty and `chain_ok`
        true; the flag history (`flags()`) is left as it was, so the fact that the segment
        was once flagged stays on record. Returns False when the segment had no flag (a
        no-op, so a retried heal is harmless); UnknownSegmentError if the id is not stored.
        """
        check_id(segment_id, "segment_id")
        with self._write("clear flag") as conn:
            flag = conn.execute(
                select(col(Segment.flag)).where(col(Segment.segment_id) == segment_id)
            ).scalar()
            if flag is None:
                raise UnknownSegmentError(f"segment {segment_id} is not in the catalog")
            if not flag:
                return False
            conn.execute(
                update(Segment)
                .where(col(Segment.segment_id) == segment_id)
                .values(flag="", flag_detail="", chain_ok=True)
            )
        return True

    def flags(self, camera_id: str | None = None) -> list[FlagRow]:
        """Every flag ever raised (newest last), for one camera or all."""
        query = select(SegmentFlag).order_by(col(SegmentFlag.id))
        if camera_id is not None:
            query = query.where(col(SegmentFlag.camera_id) == camera_id)
        with self._read("list flags") as conn:
            rows = conn.execute(query).all()
        return [FlagRow.model_validate(dict(r._mapping)) for r in rows]

    def record_conflict(
        self,
        segment_id: str,
        camera_id: str,
        device_id: str,
        existing_sha256: str,
        offered_sha256: str,
    ) -> None:
        """Record possible tampering: `segment_id` was offered again with another hash."""
        check_id(segment_id, "segment_id")
        check_id(camera_id, "camera_id")
        check_id(device_id, "device_id")
        check_sha256(existing_sha256, "existing_sha256")
        check_sha256(offered_sha256, "offered_sha256")
        with self._write("record conflict") as conn:
            conn.execute(
                insert(SegmentConflict).values(
                    segment_id=segment_id,
                    camera_id=camera_id,
                    device_id=device_id,
                    existing_sha256=existing_sha256,
                    offered_sha256=offered_sha256,
                    recorded_at_us=self._clock.now_us(),
                )
            )

    def conflicts(self, camera_id: str | None = None) -> list[ConflictRow]:
        query = select(SegmentConflict).order_by(col(SegmentConflict.id))
        if camera_id is not None:
            query = query.where(col(SegmentConflict.camera_id) == camera_id)
        with self._read("list conflicts") as conn:
            rows = conn.execute(query).all()
        return [ConflictRow.model_validate(dict(r._mapping)) for r in rows]


__all__ = ["Catalog", "range_query"]
