"""History and loss-accounting tables (issue 15), kept with the catalog because ingest writes
the hourly accounting in the same transaction as the segment row it comes from.

- `state_change`: one row per observed transition of a device, a camera, a camera's picture
  (image health) or an alert: what it became, why, and when (controller clock). Written in
  batches by the fleet's history writer, never from the MQTT path itself. A state repeated
  (e.g. after a controller restart every device is "online" again) is a no-op for the KPIs.
- `loss_event`: an agent's "unsent segment evicted" report, once per (device, fact id: the
  evicted segment's id) whatever the number of deliveries and resends; with camera, time
  range, bytes and reason.
- `camera_hour`: per camera and UTC hour (the hour a segment *starts* in is split exactly by
  time): seconds recorded, uploaded, evicted unsent, recording gaps, and a histogram of upload
  delays (capture end to catalog commit), maintained incrementally.
- `class_hour`: the same delay histogram per camera, hour and traffic class, for the segments
  the scheduler leader classified from the leases it granted (revision 0015).
- `camera_day` / `class_day`: the same rows summed per local day (Asia/Shanghai), written in
  the same statements' transactions as the hourly ones (revision 0016), so a month's report
  reads ≤ 31 rows per camera instead of ~720 (controller/catalog/daily.py).

No foreign keys, like the other history tables: the accounting outlives the segments.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, SmallInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

# Upper bounds (seconds) of the upload-delay histogram's buckets; the last is open-ended.
DELAY_BOUNDS_S: tuple[int, ...] = (10, 30, 60, 300, 900, 3600, 14400, 86400)
DELAY_COLUMNS: tuple[str, ...] = tuple(f"delay_le_{b}" for b in DELAY_BOUNDS_S) + ("delay_over",)


class StateChangeRow(SQLModel):
    """`subject` is device | camera | image | alert; `camera_id` is "" for a device."""

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=16)
    device_id: str = Field(max_length=128)
    camera_id: str = Field(default="", max_length=128)
    state: str = Field(max_length=32)
    reason: str = Field(default="", max_length=256)
    at_us: int = Field(sa_type=BigInteger)


class StateChange(StateChangeRow, table=True):
    __tablename__ = "state_change"
    __table_args__ = (
        Index("ix_state_change_subject_at", "subject", "device_id", "camera_id", "at_us"),
        Index("ix_state_change_at", "at_us"),
    )


class LossEventRow(SQLModel):
    """An unsent segment the agent evicted (a recorded loss), with its reason."""

    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=128)
    camera_id: str = Field(max_length=128)
    session: int = Field(sa_type=BigInteger)
    seq: int = Field(sa_type=BigInteger)
    # Stable across resends (the evicted segment's id; `s<session>:<seq>` when not sent).
    fact_id: str = Field(default="", max_length=128)
    start_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    size_bytes: int = Field(default=0, sa_type=BigInteger)
    reason: str = Field(max_length=64)
    detail: str = Field(default="", max_length=1024)
    at_us: int = Field(sa_type=BigInteger)  # when the agent evicted it (its clock)
    received_us: int = Field(sa_type=BigInteger)  # when the controller heard (its clock)


class LossEvent(LossEventRow, table=True):
    __tablename__ = "loss_event"
    __table_args__ = (
        UniqueConstraint("device_id", "fact_id", name="uq_loss_event_fact"),
        Index("ix_loss_event_camera_start", "camera_id", "start_us"),
    )


class DelayHistogram(SQLModel):
    """The upload-delay histogram (DELAY_COLUMNS), one count per bucket; `camera_hour` and
    `class_hour` both keep it."""

    delay_le_10: int = Field(default=0, sa_type=BigInteger)
    delay_le_30: int = Field(default=0, sa_type=BigInteger)
    delay_le_60: int = Field(default=0, sa_type=BigInteger)
    delay_le_300: int = Field(default=0, sa_type=BigInteger)
    delay_le_900: int = Field(default=0, sa_type=BigInteger)
    delay_le_3600: int = Field(default=0, sa_type=BigInteger)
    delay_le_14400: int = Field(default=0, sa_type=BigInteger)
    delay_le_86400: int = Field(default=0, sa_type=BigInteger)
    delay_over: int = Field(default=0, sa_type=BigInteger)


class AccountingSums(DelayHistogram):
    """What `camera_hour` and `camera_day` keep per camera and time bucket."""

    recorded_us: int = Field(default=0, sa_type=BigInteger)
    uploaded_us: int = Field(default=0, sa_type=BigInteger)
    evicted_us: int = Field(default=0, sa_type=BigInteger)
    gap_us: int = Field(default=0, sa_type=BigInteger)
    segments: int = Field(default=0, sa_type=BigInteger)
    uploaded_bytes: int = Field(default=0, sa_type=BigInteger)
    evicted_bytes: int = Field(default=0, sa_type=BigInteger)
    # The tallest picture ingest probed in the bucket (0: none probed): tells the new HD
    # village cameras (1080p and up) from the existing SD ones for the targets by kind.
    video_height: int = Field(default=0)


class CameraHourRow(AccountingSums):
    """Microseconds per camera and UTC hour (`hour_us`: the hour's start)."""

    camera_id: str = Field(primary_key=True, max_length=128)
    hour_us: int = Field(primary_key=True, sa_type=BigInteger)


class CameraHour(CameraHourRow, table=True):
    __tablename__ = "camera_hour"
    __table_args__ = (Index("ix_camera_hour_hour", "hour_us"),)


class ClassHourRow(DelayHistogram):
    """Upload timeliness per camera, UTC hour (of the segment's start) and traffic class:
    the segments the scheduler classified from its leases and their delay histogram."""

    camera_id: str = Field(primary_key=True, max_length=128)
    hour_us: int = Field(primary_key=True, sa_type=BigInteger)
    traffic_class: int = Field(primary_key=True, sa_type=SmallInteger)
    segments: int = Field(default=0, sa_type=BigInteger)


class ClassHour(ClassHourRow, table=True):
    __tablename__ = "class_hour"
    __table_args__ = (Index("ix_class_hour_hour", "hour_us"),)


class CameraDayRow(AccountingSums):
    """`camera_hour` summed per camera and local day (`day_us`: local midnight, UTC µs)."""

    camera_id: str = Field(primary_key=True, max_length=128)
    day_us: int = Field(primary_key=True, sa_type=BigInteger)


class CameraDay(CameraDayRow, table=True):
    __tablename__ = "camera_day"
    __table_args__ = (Index("ix_camera_day_day", "day_us"),)


class ClassDayRow(DelayHistogram):
    """`class_hour` summed per camera, local day and traffic class."""

    camera_id: str = Field(primary_key=True, max_length=128)
    day_us: int = Field(primary_key=True, sa_type=BigInteger)
    traffic_class: int = Field(primary_key=True, sa_type=SmallInteger)
    segments: int = Field(default=0, sa_type=BigInteger)


class ClassDay(ClassDayRow, table=True):
    __tablename__ = "class_day"
    __table_args__ = (Index("ix_class_day_day", "day_us"),)
