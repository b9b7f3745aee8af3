"""Segment-table reads other packages need, kept in the catalog so SQL lives in one place.

`committed_segments` is the scheduler's delivery probe (which leased segments have arrived);
`count_stored_between` numbers a camera's live playlist (HLS media sequence numbers).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from controller.catalog.models import SEGMENT_STORED, Segment

_IN_CHUNK = 500


def committed_segments(engine: Engine, ids: Iterable[str]) -> list[tuple[str, str, int, int]]:
    """(device, segment, size, committed_at_us) of those `ids` the catalog holds."""
    wanted = sorted(ids)
    out: list[tuple[str, str, int, int]] = []
    seg = Segment
    with engine.connect() as conn:
        for i in range(0, len(wanted), _IN_CHUNK):
            rows = conn.execute(
                select(
                    col(seg.device_id),
                    col(seg.segment_id),
                    col(seg.size_bytes),
                    col(seg.committed_at_us),
                ).where(col(seg.segment_id).in_(wanted[i : i + _IN_CHUNK]))
            ).all()
            out.extend((d, s, int(n), int(at)) for d, s, n, at in rows)
    return out


def count_stored_between(engine: Engine, camera_id: str, from_us: int, before_us: int) -> int:
    """How many of the camera's stored segments start in [from_us, before_us) (a bounded
    index range scan)."""
    query = (
        select(func.count())
        .select_from(Segment)
        .where(
            col(Segment.camera_id) == camera_id,
            col(Segment.start_us) >= from_us,
            col(Segment.start_us) < before_us,
            col(Segment.state) == SEGMENT_STORED,
        )
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
