"""The directory table: one row per catalog camera that has been described (migration 0005).

A separate table, not columns on `camera`: the catalog row is written by ingest and the
registry many times a day, the directory by people (CSV import, the console); neither
overwrites the other's facts. The class stays on `camera.resource_class` (policy reads it
there); the directory's import sets it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class DirectoryRow(SQLModel):
    camera_id: str = Field(primary_key=True, foreign_key="camera.camera_id", max_length=128)
    name: str = Field(default="", max_length=128)
    township: str = Field(default="", max_length=64)
    village: str = Field(default="", max_length=64)
    lat: float | None = None
    lon: float | None = None
    gb_code: str | None = Field(default=None, max_length=20, unique=True)
    updated_at_us: int = Field(default=0, sa_type=BigInteger)


class CameraDirectory(DirectoryRow, table=True):
    __tablename__ = "camera_directory"
    __table_args__ = (Index("ix_camera_directory_place", "township", "village"),)


TABLE = CameraDirectory.__table__  # type: ignore[attr-defined]
