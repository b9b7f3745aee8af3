"""Job tables (SQLModel): a job, the segments it covers, and the footage it found gone.

They live in the catalog's database (SQLite or PostgreSQL) so jobs survive a controller
restart and the CLI can work on them directly. Times are BIGINT microseconds like the
catalog. `job_segment` has no foreign key to the catalog's segments: a job remembers a
segment that was evicted on the agent before it ever reached the cloud.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, String
from sqlmodel import Field, SQLModel


class Job(SQLModel, table=True):
    __tablename__ = "job"

    job_id: str = Field(primary_key=True, max_length=32)
    case_id: str = Field(max_length=96, index=True)
    cameras: str = Field(max_length=8192)  # JSON list of camera ids
    start_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    traffic_class: int
    deadline_us: int = Field(sa_type=BigInteger)
    state: str = Field(max_length=16, index=True)
    created_at_us: int = Field(sa_type=BigInteger)
    updated_at_us: int = Field(sa_type=BigInteger)
    finished_at_us: int = Field(default=0, sa_type=BigInteger)
    requested_by: str = Field(default="", max_length=128)
    bytes_done: int = Field(default=0, sa_type=BigInteger)
    bytes_total: int = Field(default=0, sa_type=BigInteger)
    segments_done: int = Field(default=0)
    segments_total: int = Field(default=0)
    eta_us: int = Field(default=0, sa_type=BigInteger)
    detail: str = Field(default="", max_length=1024)
    # JSON: per camera {camera_id, device_id, complete, waiting}
    cameras_status: str = Field(default="[]", max_length=65536)
    # JSON list of the catalog hold ids (cloud-side legal holds) made for this job.
    catalog_holds: str = Field(default="[]", max_length=4096)


class JobSegment(SQLModel, table=True):
    __tablename__ = "job_segment"

    job_id: str = Field(sa_column=Column(String(32), ForeignKey("job.job_id"), primary_key=True))
    segment_id: str = Field(primary_key=True, max_length=128)
    camera_id: str = Field(max_length=128)
    start_us: int = Field(sa_type=BigInteger)
    duration_us: int = Field(default=0, sa_type=BigInteger)
    size_bytes: int = Field(default=0, sa_type=BigInteger)
    state: str = Field(max_length=16)
    updated_at_us: int = Field(sa_type=BigInteger)


class JobGone(SQLModel, table=True):
    __tablename__ = "job_gone"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=32, index=True)
    camera_id: str = Field(max_length=128)
    start_us: int = Field(sa_type=BigInteger)
    end_us: int = Field(sa_type=BigInteger)
    reason: str = Field(max_length=512)


JOB_TABLES = (Job.__table__, JobSegment.__table__, JobGone.__table__)  # type: ignore[attr-defined]
