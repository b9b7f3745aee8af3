"""Catalog tables, as SQLModel model families: `XRow` is the plain data other packages pass
around and get back; `X(XRow, table=True)` is the table that stores it.

Microsecond timestamps are BIGINT (a 32-bit INTEGER overflows in 1970 + 36 minutes on
PostgreSQL; SQLite does not care). Segments are indexed by (camera_id, start_us): every hot
query (range, previous, next, retention candidates) is a range scan on that index.
History tables (flags, conflicts, retention records, holds) have no foreign key to segments,
so evidence of tampering and of deletions outlives the segments it is about.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, SmallInteger
from sqlmodel import Field, SQLModel

SEGMENT_STORED = "stored"  # the object is in the store; visible to playback
SEGMENT_DELETING = "deleting"  # a retention sweep is removing it; the object may be gone

FLAG_CHAIN_BREAK = "chain_break"  # prev_sha256 does not match the previous segment's sha256
FLAG_GAP = "gap"  # time between this segment and the previous one is missing
FLAG_OVERLAP = "overlap"  # this segment starts before the previous one ends


class DeviceRow(SQLModel):
    """An enrolled agent (village NVR or handheld terminal) and where it sits."""

    device_id: str = Field(primary_key=True, max_length=128)
    county: str = Field(max_length=128)
    site: str = Field(max_length=128)
    kind: str = Field(max_length=32)
    created_at_us: int = Field(default=0, sa_type=BigInteger)
    updated_at_us: int = Field(default=0, sa_type=BigInteger)


class Device(DeviceRow, table=True):
    __tablename__ = "device"


class CameraBase(SQLModel):
    camera_id: str = Field(primary_key=True, max_length=128)
    device_id: str = Field(foreign_key="device.device_id", index=True, max_length=128)
    retention_days: int = Field(default=30)
    resource_class: str = Field(default="II", max_length=8)
    # The longest segment ever stored for this camera: the lower bound that lets an overlap
    # query ("segments ending after T") stay a bounded index range scan on start_us.
    max_duration_us: int = Field(default=0, sa_type=BigInteger)
    created_at_us: int = Field(default=0, sa_type=BigInteger)
    updated_at_us: int = Field(default=0, sa_type=BigInteger)


class Camera(CameraBase, table=True):
    __tablename__ = "camera"


class CameraRow(CameraBase):
    """A camera joined with its device's place (what object keys and policies need)."""

    county: str
    site: str


class SegmentRow(SQLModel):
    """One stored segment. `end_us` = `start_us` + `duration_us`; hashes are lowercase hex."""

    segment_id: str = Field(primary_key=True, max_length=128)
    camera_id: str = Field(foreign_key="camera.camera_id", max_length=128)
    device_id: str = Field(max_length=128)
    start_us: int = Field(sa_type=BigInteger)
    duration_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    prev_sha256: str = Field(default="", max_length=64)
    object_key: str = Field(max_length=1024)
    agent_flags: int = Field(default=0, sa_type=BigInteger)
    chain_ok: bool = True
    flag: str = Field(default="", max_length=32, index=True)
    flag_detail: str = Field(default="", max_length=1024)
    committed_at_us: int = Field(default=0, sa_type=BigInteger)
    state: str = Field(default=SEGMENT_STORED, max_length=16, index=True)
    # The class of the lease it was uploaded under (controller.traffic.TrafficClass value),
    # set by the scheduler leader from its own lease; 0: not known (see revision 0015).
    traffic_class: int = Field(
        default=0, sa_type=SmallInteger, sa_column_kwargs={"server_default": "0"}
    )


class Segment(SegmentRow, table=True):
    __tablename__ = "segment"
    __table_args__ = (Index("ix_segment_camera_start", "camera_id", "start_us"),)


class FlagRow(SQLModel):
    """A flag raised on a segment (chain break, gap, ...), kept after the segment is gone."""

    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(max_length=128, index=True)
    camera_id: str = Field(max_length=128, index=True)
    flag: str = Field(max_length=32)
    detail: str = Field(default="", max_length=1024)
    flagged_at_us: int = Field(sa_type=BigInteger)


class SegmentFlag(FlagRow, table=True):
    __tablename__ = "segment_flag"


class ConflictRow(SQLModel):
    """Possible tampering: a segment id offered again with a different SHA-256."""

    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(max_length=128, index=True)
    camera_id: str = Field(max_length=128, index=True)
    device_id: str = Field(max_length=128)
    existing_sha256: str = Field(max_length=64)
    offered_sha256: str = Field(max_length=64)
    recorded_at_us: int = Field(sa_type=BigInteger)


class SegmentConflict(ConflictRow, table=True):
    __tablename__ = "segment_conflict"


class HoldRow(SQLModel):
    """A legal hold: [start_us, end_us) of one camera is kept until released (case id)."""

    id: int | None = Field(default=None, primary_key=True)
    camera_id: str = Field(max_length=128, index=True)
    start_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    case_id: str = Field(max_length=128, index=True)
    created_at_us: int = Field(sa_type=BigInteger)
    released_at_us: int | None = Field(default=None, sa_type=BigInteger)


class Hold(HoldRow, table=True):
    __tablename__ = "hold"


class RetentionRecordRow(SQLModel):
    """One deletion by retention: what (segment, key, hash, size), when, and why."""

    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(max_length=128, index=True)
    camera_id: str = Field(max_length=128, index=True)
    object_key: str = Field(max_length=1024)
    start_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    reason: str = Field(max_length=32)
    detail: str = Field(default="", max_length=1024)
    deleted_at_us: int = Field(sa_type=BigInteger, index=True)


class RetentionRecord(RetentionRecordRow, table=True):
    __tablename__ = "retention_record"


class SegmentMediaRow(SQLModel):
    """What one segment carries (probed at ingest from its container header): video codec,
    profile, size and frame rate; audio codec, sample rate and channels ("" / 0 when absent
    or unknown). `probe_error` says why the probe failed; the segment is stored regardless.

    Its own table (not columns on `segment`) so existing deployments, whose tables
    `create_all` does not alter, gain it on start. `camera_id` and `start_us` are copied so
    "the camera's current media" is one index lookup. No foreign key, like the history
    tables; retention deletes the row with its segment.
    """

    segment_id: str = Field(primary_key=True, max_length=128)
    camera_id: str = Field(max_length=128)
    start_us: int = Field(sa_type=BigInteger)
    video_codec: str = Field(default="", max_length=32)
    video_profile: str = Field(default="", max_length=64)
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    audio_codec: str = Field(default="", max_length=32)
    audio_sample_rate: int = 0
    audio_channels: int = 0
    probe_error: str = Field(default="", max_length=512)
    probe_us: int = Field(default=0, sa_type=BigInteger)


class SegmentMedia(SegmentMediaRow, table=True):
    __tablename__ = "segment_media"
    __table_args__ = (Index("ix_segment_media_camera_start", "camera_id", "start_us"),)
