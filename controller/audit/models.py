"""The audit log's tables: entries, signed checkpoints, and a one-row head.

`audit_head` exists so appenders serialise on one row lock (PostgreSQL `UPDATE` takes it;
SQLite takes its single write lock on the same statement): the next sequence number and the
previous hash are read only by whoever holds it, so concurrent appenders, on one controller or
several, cannot fork the chain. `seq` is also the primary key, a second line of defence.
Timestamps and sequence numbers are BIGINT (PostgreSQL INTEGER is 32-bit).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class AuditEntryRow(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_user_at", "actor_user", "at_us"),
        Index("ix_audit_entry_camera_at", "camera_id", "at_us"),
        Index("ix_audit_entry_case_at", "case_id", "at_us"),
        Index("ix_audit_entry_grant", "grant_id"),
        Index("ix_audit_entry_at", "at_us"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at_us: int = Field(sa_type=BigInteger)
    action: str = Field(max_length=256)
    actor_user: str = Field(default="", max_length=256)
    actor_org: str = Field(default="", max_length=256)
    camera_id: str = Field(default="", max_length=256)
    case_id: str = Field(default="", max_length=256)
    grant_id: str = Field(default="", max_length=256)
    outcome: str = Field(default="ok", max_length=256)
    reason: str = Field(default="", max_length=256)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditCheckpointRow(SQLModel, table=True):
    __tablename__ = "audit_checkpoint"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64)
    at_us: int = Field(sa_type=BigInteger)
    prev_checkpoint_seq: int = Field(sa_type=BigInteger)
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=256)


class AuditHeadRow(SQLModel, table=True):
    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    last_seq: int = Field(default=0, sa_type=BigInteger)
    last_hash: str = Field(max_length=64)
    last_checkpoint_seq: int = Field(default=0, sa_type=BigInteger)
