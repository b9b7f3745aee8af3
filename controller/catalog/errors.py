"""The catalog's exception tree and its input checks (pure: no database needed).

    CatalogError                 any catalog failure
    ├── InvalidInputError        malformed input; refused before the database is touched
    ├── UnknownDeviceError       a camera refers to a device that is not registered
    ├── UnknownCameraError       a segment or hold refers to a camera that is not registered
    ├── UnknownSegmentError      flagging a segment id that is not in the catalog
    ├── DuplicateSegmentError    a segment id that is already stored (nothing was written)
    └── CatalogUnavailableError  the database could not be reached or failed; retry later

Every write is one transaction: when one of these is raised, nothing changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from controller.catalog.models import SegmentRow

MAX_ID_LEN = 128
MAX_RETENTION_DAYS = 36_500
RESOURCE_CLASSES = ("II", "III")  # the platform integrates class II and class III video
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ID = re.compile(r"[^\x00-\x1f\x7f/\\]{1,128}")


class CatalogError(Exception):
    """A catalog operation failed."""


class InvalidInputError(CatalogError, ValueError):
    """Input was malformed; nothing was written."""


class UnknownDeviceError(CatalogError):
    """The device is not registered."""


class UnknownCameraError(CatalogError):
    """The camera is not registered."""


class UnknownSegmentError(CatalogError):
    """The segment is not in the catalog."""


class DuplicateSegmentError(CatalogError):
    """A segment with this id is already stored."""

    def __init__(self, segment_id: str, message: str | None = None) -> None:
        super().__init__(message or f"segment {segment_id} is already in the catalog")
        self.segment_id = segment_id


class CatalogUnavailableError(CatalogError):
    """The database failed or could not be reached (a retry may succeed)."""


def check_id(value: object, what: str) -> str:
    """An identifier: 1-128 characters, no control characters or path separators."""
    if not isinstance(value, str) or not _ID.fullmatch(value) or value.strip() != value:
        raise InvalidInputError(f"{what} {value!r} is not a valid identifier")
    return value


def check_us(value: object, what: str) -> int:
    """A microsecond timestamp or duration: a non-negative integer that fits a BIGINT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidInputError(f"{what} {value!r} is not a non-negative 64-bit integer")
    return value


def check_range(start_us: int, end_us: int) -> None:
    check_us(start_us, "start_us")
    check_us(end_us, "end_us")
    if end_us <= start_us:
        raise InvalidInputError(f"range end {end_us} is not after its start {start_us}")


def check_sha256(value: object, what: str, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return ""
    if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
        raise InvalidInputError(f"{what} {value!r} is not 64 lowercase hex characters")
    return value


def check_text(value: object, what: str, max_len: int) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidInputError(f"{what} is not a string of at most {max_len} characters")
    return value


def check_retention_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInputError(f"retention_days {days!r} is not 1..{MAX_RETENTION_DAYS}")
    return days


def check_resource_class(value: object) -> str:
    if value not in RESOURCE_CLASSES:
        raise InvalidInputError(f"resource_class {value!r} is not one of {RESOURCE_CLASSES}")
    return str(value)


def check_segment(row: SegmentRow) -> None:
    """Refuse a segment row that is internally inconsistent (before any database work)."""
    if not isinstance(row, SegmentRow):
        raise InvalidInputError(f"expected a SegmentRow, got {type(row).__name__}")
    check_id(row.segment_id, "segment_id")
    check_id(row.camera_id, "camera_id")
    check_id(row.device_id, "device_id")
    check_us(row.start_us, "start_us")
    check_us(row.duration_us, "duration_us")
    check_us(row.end_us, "end_us")
    check_us(row.size_bytes, "size_bytes")
    check_us(row.committed_at_us, "committed_at_us")
    if row.end_us != row.start_us + row.duration_us:
        raise InvalidInputError(
            f"segment {row.segment_id}: end_us {row.end_us} != start_us + duration_us"
        )
    check_sha256(row.sha256, f"segment {row.segment_id} sha256")
    check_sha256(row.prev_sha256, f"segment {row.segment_id} prev_sha256", allow_empty=True)
    check_text(row.object_key, "object_key", 1024)
    if not row.object_key:
        raise InvalidInputError(f"segment {row.segment_id} has no object_key")
    check_text(row.flag, "flag", 32)
    check_text(row.flag_detail, "flag_detail", 1024)
    if isinstance(row.agent_flags, bool) or not isinstance(row.agent_flags, int):
        raise InvalidInputError(f"segment {row.segment_id}: agent_flags is not an integer")


def check_batch(rows: Sequence[SegmentRow]) -> None:
    """Every row valid and no segment id twice in one batch."""
    seen: set[str] = set()
    for row in rows:
        check_segment(row)
        if row.segment_id in seen:
            raise InvalidInputError(f"segment {row.segment_id} appears twice in one batch")
        seen.add(row.segment_id)
