"""Fencing a leader's writes by its epoch, inside the write's own transaction.

The lease margin keeps leadership terms apart in time; this keeps a deposed leader's writes
out even if its process stalled past its deadline (a pause, a slow disk): the write's
transaction reads the lease row FOR SHARE and goes on only if it still carries the writer's
epoch. A takeover's UPDATE then waits for that transaction to end, or the write sees the new
epoch and is refused. (SQLite has no row locks: its write transaction holds the database.)
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlmodel import col

from controller.leader import NotLeaderError
from controller.leader.lease import LEASE_NAME
from controller.leader.tables import LeaderLease


def hold_epoch(conn: Connection, epoch: int, what: str) -> None:
    """(in a write transaction) NotLeaderError, naming `what`, unless the lease has `epoch`."""
    held = conn.execute(
        select(col(LeaderLease.epoch))
        .where(col(LeaderLease.name) == LEASE_NAME)
        .with_for_update(read=True)
    ).scalar()
    if held != epoch:
        raise NotLeaderError(f"{what} not saved: leadership epoch {epoch} is over ({held})")


__all__ = ["hold_epoch"]
