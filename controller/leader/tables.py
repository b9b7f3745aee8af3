"""The leadership lease table (SQLModel): one row per elected role ('scheduler').

In the catalog's database, shared by every replica. Times are BIGINT microseconds on the
database's own clock (PostgreSQL `now()`), so replicas' clocks never have to agree; on
SQLite (replicas on one host only) the controller's clock stands in for it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class LeaderLease(SQLModel, table=True):
    __tablename__ = "leader_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(default="", max_length=128)  # replica id
    incarnation: str = Field(default="", max_length=32)  # random per process
    address: str = Field(default="", max_length=256)  # advertised gRPC host:port
    epoch: int = Field(default=0, sa_type=BigInteger)  # fencing token, +1 per term
    expires_at_us: int = Field(default=0, sa_type=BigInteger)
    renewed_at_us: int = Field(default=0, sa_type=BigInteger)


LEADER_TABLES = [LeaderLease.__table__]  # type: ignore[attr-defined]

__all__ = ["LEADER_TABLES", "LeaderLease"]
