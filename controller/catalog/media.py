"""The catalog side of segment media: each segment's codecs, and each camera's current ones.

Rows are written by `Catalog.add_segments(rows, media)` in the segment's own transaction (one
commit, one fsync on SQLite), so a stored segment and its media facts appear together. Reads
are bulk: the segment listing asks for a page of ids at once, the camera list for every
camera's latest probed segment in one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Connection
from sqlmodel import col

from controller.catalog.base import CatalogBase, chunks
from controller.catalog.models import SegmentMedia, SegmentMediaRow


def _media(mapping: object) -> SegmentMediaRow:
    return SegmentMediaRow.model_validate(dict(mapping))  # type: ignore[call-overload]


def insert_media(conn: Connection, media: Sequence[SegmentMediaRow]) -> None:
    """Part of a segment write transaction (see `Catalog.add_segments`)."""
    if media:
        conn.execute(SegmentMedia.__table__.insert(), [m.model_dump() for m in media])  # type: ignore[attr-defined]


def delete_media(conn: Connection, segment_ids: Sequence[str]) -> None:
    """Part of retention's final delete: the media row goes with its segment."""
    if segment_ids:
        conn.execute(delete(SegmentMedia).where(col(SegmentMedia.segment_id).in_(segment_ids)))


class MediaCatalog(CatalogBase):
    """Media facts per segment (mixed into Catalog)."""

    def segment_media(self, segment_ids: Iterable[str]) -> dict[str, SegmentMediaRow]:
        """segment id -> its media row, for the ids that have one."""
        ids = sorted(set(segment_ids))
        out: dict[str, SegmentMediaRow] = {}
        with self._read("segment media") as conn:
            for chunk in chunks(ids):
                rows = conn.execute(
                    select(SegmentMedia).where(col(SegmentMedia.segment_id).in_(chunk))
                ).all()
                out.update((r.segment_id, _media(r._mapping)) for r in rows)
        return out

    def camera_media(self, camera_ids: Iterable[str] | None = None) -> dict[str, SegmentMediaRow]:
        """camera id -> the media of its latest successfully probed segment (its current
        media), for every camera (None) or the ones named."""
        latest: Any = select(
            col(SegmentMedia.camera_id).label("cam"),
            func.max(col(SegmentMedia.start_us)).label("newest"),
        ).where(col(SegmentMedia.probe_error) == "")
        wanted = None if camera_ids is None else sorted(set(camera_ids))
        if wanted is not None:
            if not wanted:
                return {}
            latest = latest.where(col(SegmentMedia.camera_id).in_(wanted))
        sub = latest.group_by(col(SegmentMedia.camera_id)).subquery()
        query = (
            select(SegmentMedia)
            .join(
                sub,
                and_(
                    col(SegmentMedia.camera_id) == sub.c.cam,
                    col(SegmentMedia.start_us) == sub.c.newest,
                ),
            )
            .where(col(SegmentMedia.probe_error) == "")
            .order_by(col(SegmentMedia.camera_id), col(SegmentMedia.segment_id))
        )
        out: dict[str, SegmentMediaRow] = {}
        with self._read("camera media") as conn:
            for r in conn.execute(query).all():
                out.setdefault(r.camera_id, _media(r._mapping))
        return out
