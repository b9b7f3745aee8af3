"""The controller's catalog: devices, cameras, segments, flags, holds and retention records.

`make_engine(url)` opens SQLite (WAL, the default) or PostgreSQL; `Catalog(engine, clock)` is
the one object the rest of the controller uses. Rows come and go as plain `*Row` models.
"""

from controller.catalog.catalog import Catalog, range_query
from controller.catalog.db import make_engine, normalize_url
from controller.catalog.errors import (
    CatalogError,
    CatalogUnavailableError,
    DuplicateSegmentError,
    InvalidInputError,
    UnknownCameraError,
    UnknownDeviceError,
    UnknownSegmentError,
)
from controller.catalog.models import (
    FLAG_CHAIN_BREAK,
    FLAG_GAP,
    FLAG_OVERLAP,
    SEGMENT_DELETING,
    SEGMENT_STORED,
    CameraRow,
    ConflictRow,
    DeviceRow,
    FlagRow,
    HoldRow,
    RetentionRecordRow,
    SegmentMediaRow,
    SegmentRow,
)

__all__ = [
    "FLAG_CHAIN_BREAK",
    "FLAG_GAP",
    "FLAG_OVERLAP",
    "SEGMENT_DELETING",
    "SEGMENT_STORED",
    "CameraRow",
    "Catalog",
    "CatalogError",
    "CatalogUnavailableError",
    "ConflictRow",
    "DeviceRow",
    "DuplicateSegmentError",
    "FlagRow",
    "HoldRow",
    "InvalidInputError",
    "RetentionRecordRow",
    "SegmentMediaRow",
    "SegmentRow",
    "UnknownCameraError",
    "UnknownDeviceError",
    "UnknownSegmentError",
    "make_engine",
    "normalize_url",
    "range_query",
]
