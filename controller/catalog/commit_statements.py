"""The catalog's statements for a segment commit and a camera lookup, built once.

Why: ingest commits a segment every few seconds per camera at city scale and looks its camera
up on most of them; building these statements (SQLAlchemy expression trees, then their cache
keys) cost more CPU than running them. Parameters are bound at execution.
"""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import col

from controller.catalog.models import Camera, Device, Segment

CAMERAS_MAX_DURATION = select(col(Camera.camera_id), col(Camera.max_duration_us)).where(
    col(Camera.camera_id).in_(bindparam("ids", expanding=True))
)
ANY_SEGMENT = (
    select(col(Segment.segment_id))
    .where(col(Segment.segment_id).in_(bindparam("ids", expanding=True)))
    .limit(1)
)
CAMERAS = select(Camera, col(Device.county), col(Device.site)).join(
    Device, col(Device.device_id) == col(Camera.device_id)
)
CAMERA_BY_ID = CAMERAS.where(col(Camera.camera_id) == bindparam("camera"))
INSERT_SEGMENT = insert(Segment.__table__)  # type: ignore[attr-defined]
RAISE_MAX_DURATION = (
    update(Camera.__table__)  # type: ignore[attr-defined]
    .where(
        Camera.__table__.c.camera_id == bindparam("camera"),  # type: ignore[attr-defined]
        Camera.__table__.c.max_duration_us < bindparam("duration"),  # type: ignore[attr-defined]
    )
    .values(max_duration_us=bindparam("duration"))
)
