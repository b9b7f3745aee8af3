"""The buffer index's SQLite schema, its query fragments and row mappers.

Queries are built only from the constant fragments here; every value is bound with "?".
Each segment row carries `seq`, its position in its camera's hash chain; each eviction
record keeps the evicted segment's hashes and seq, so the chain stays checkable after eviction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.model import EvictionRecord, Hold, SegmentFlag, SegmentInfo, SegmentState

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    segment_id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, seq INTEGER NOT NULL,
    start_us INTEGER NOT NULL, duration_us INTEGER NOT NULL, size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL, prev_sha256 TEXT NOT NULL, container TEXT NOT NULL,
    flags INTEGER NOT NULL, state TEXT NOT NULL, filename TEXT NOT NULL UNIQUE,
    committed_us INTEGER NOT NULL, UNIQUE (camera_id, seq));
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments (camera_id, start_us);
CREATE INDEX IF NOT EXISTS segments_state_start
    ON segments (state, start_us, camera_id, segment_id);
CREATE TABLE IF NOT EXISTS cameras (
    camera_id TEXT PRIMARY KEY, head_seq INTEGER NOT NULL, head_sha256 TEXT NOT NULL,
    anchor_seq INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS evictions (
    record_id INTEGER PRIMARY KEY AUTOINCREMENT, segment_id TEXT NOT NULL UNIQUE,
    camera_id TEXT NOT NULL, seq INTEGER NOT NULL, start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
    prev_sha256 TEXT NOT NULL, was_uploaded INTEGER NOT NULL, at_us INTEGER NOT NULL,
    reported INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS evictions_reported ON evictions (reported, record_id);
CREATE INDEX IF NOT EXISTS evictions_camera_seq ON evictions (camera_id, seq);
CREATE TABLE IF NOT EXISTS holds (
    hold_id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL, case_id TEXT NOT NULL, created_us INTEGER NOT NULL,
    UNIQUE (camera_id, start_us, end_us, case_id));
CREATE TABLE IF NOT EXISTS gaps (
    camera_id TEXT NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
    reason TEXT NOT NULL, recorded_us INTEGER NOT NULL,
    PRIMARY KEY (camera_id, start_us, end_us));
"""

SEGMENT_COLUMNS = (
    "segment_id, camera_id, start_us, duration_us, size_bytes, sha256, prev_sha256, "
    "container, flags, state, filename"
)
EVICTION_COLUMNS = (
    "record_id, segment_id, camera_id, start_us, end_us, size_bytes, was_uploaded, at_us, reported"
)
# A zero-length segment occupies the instant at its start (see eviction.overlaps).
SEG_END = "MAX(s.start_us + s.duration_us, s.start_us + 1)"
# Queries are built only from these constant fragments; every value is bound with "?".
SELECT_SEGMENTS = f"SELECT {SEGMENT_COLUMNS} FROM segments s"  # noqa: S608
INSERT_SEGMENT = (
    f"INSERT INTO segments ({SEGMENT_COLUMNS}, seq, committed_us) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_GAPS = "SELECT camera_id, start_us, end_us, reason FROM gaps s"
SELECT_EVICTIONS = f"SELECT {EVICTION_COLUMNS} FROM evictions"  # noqa: S608
HELD_COUNT = (
    "SELECT COUNT(DISTINCT s.segment_id) FROM segments s JOIN holds h "  # noqa: S608
    f"ON s.camera_id = h.camera_id AND s.start_us < h.end_us AND {SEG_END} > h.start_us"
)


@dataclass(frozen=True, slots=True)
class CameraHead:
    head_seq: int  # seq of the camera's last committed segment; 0 before the first
    head_sha256: str
    anchor_seq: int


def segment_row(row: Sequence[Any]) -> SegmentInfo:
    return SegmentInfo(
        segment_id=row[0],
        camera_id=row[1],
        start_us=row[2],
        duration_us=row[3],
        size_bytes=row[4],
        sha256=row[5],
        prev_sha256=row[6],
        container=row[7],
        flags=SegmentFlag(row[8]),
        state=SegmentState(row[9]),
        filename=row[10],
    )


def eviction_row(row: Sequence[Any]) -> EvictionRecord:
    return EvictionRecord(
        record_id=row[0],
        segment_id=row[1],
        camera_id=row[2],
        start_us=row[3],
        end_us=row[4],
        size_bytes=row[5],
        was_uploaded=bool(row[6]),
        at_us=row[7],
        reported=bool(row[8]),
    )


def hold_row(row: Sequence[Any]) -> Hold:
    return Hold(hold_id=row[0], camera_id=row[1], start_us=row[2], end_us=row[3], case_id=row[4])


def range_filter(
    camera_id: str | None, start_us: int | None, end_us: int | None, end_expr: str
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if camera_id is not None:
        clauses.append("s.camera_id = ?")
        args.append(camera_id)
    if end_us is not None:
        clauses.append("s.start_us < ?")
        args.append(end_us)
    if start_us is not None:
        clauses.append(f"{end_expr} > ?")
        args.append(start_us)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args
