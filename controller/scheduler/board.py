"""The leader's plan, pinned in the database for the followers' HTTP API.

Only the leader plans (controller/leader), but the control centre may ask any replica for the
plan and the links. So the leader writes its `Snapshot` (devices, leases, link load, counters)
into one row of `scheduler_view` every few seconds, fenced by its leadership epoch, and a
follower's `snapshot()`/`delivery()` answer from that row (read at most once a second). Every
replica then shows the same plan, at most `PUBLISH_S` + 1 s old on a follower.

`encode`/`decode` are pure (JSON of the plain dataclasses); `PlanBoard` is the table's shell.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

from sqlalchemy import BigInteger, Text, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel, col

from controller.catalog.db import WRITE_OPTION
from controller.clock import Clock
from controller.leader.fence import hold_epoch
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.upkeep import DeviceSnapshot, Snapshot

log = logging.getLogger("vigil.scheduler")

PUBLISH_S = 5.0  # how often the leader writes its plan for the followers
READ_S = 1.0  # how long a follower reuses what it read
VIEW_NAME = "plan"


class SchedulerView(SQLModel, table=True):
    __tablename__ = "scheduler_view"

    name: str = Field(primary_key=True, max_length=32)
    epoch: int = Field(default=0, sa_type=BigInteger)  # the leadership term that wrote it
    at_us: int = Field(default=0, sa_type=BigInteger)
    payload: str = Field(default="", sa_type=Text)  # encode(Snapshot)


def encode(snap: Snapshot) -> str:
    """The snapshot as compact JSON (pure)."""
    return json.dumps(asdict(snap), separators=(",", ":"))


def decode(text: str) -> Snapshot:
    """The snapshot `encode` wrote (pure); ValueError/KeyError/TypeError if it is not one."""
    data: dict[str, Any] = json.loads(text)
    return Snapshot(
        at_us=int(data["at_us"]),
        plan_version=int(data["plan_version"]),
        devices=[DeviceSnapshot(**d) for d in data["devices"]],
        links=[LinkDelivery(**link) for link in data["links"]],
        counters={str(k): int(v) for k, v in data["counters"].items()},
    )


class PlanBoard:
    """The `scheduler_view` row: the leader publishes, followers read."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def publish(self, snap: Snapshot, epoch: int) -> None:
        """Write `snap` if the leadership lease still has `epoch` (NotLeaderError if not;
        the lease row is read FOR SHARE, so a takeover waits for this write)."""
        values = {"name": VIEW_NAME, "epoch": epoch, "at_us": snap.at_us, "payload": encode(snap)}
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                hold_epoch(conn, epoch, "plan")
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(SchedulerView.__table__).values(**values)  # type: ignore[attr-defined]
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["name"],
                        set_={k: stmt.excluded[k] for k in ("epoch", "at_us", "payload")},
                    )
                )

    def read(self) -> tuple[int, Snapshot] | None:
        """(epoch, snapshot) as last published; None when nothing was published yet."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(col(SchedulerView.epoch), col(SchedulerView.payload)).where(
                    col(SchedulerView.name) == VIEW_NAME
                )
            ).first()
        if row is None or not row[1]:
            return None
        return int(row[0]), decode(str(row[1]))


class FollowerView:
    """A follower's view of the leader's plan: the board's row, read at most every READ_S.
    A board that cannot be read (database down) keeps answering what it read last."""

    def __init__(self, board: PlanBoard, clock: Clock) -> None:
        self._board = board
        self._clock = clock
        self._read_at = float("-inf")
        self._snap: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        mono = self._clock.monotonic()
        if mono - self._read_at >= READ_S:
            self._read_at = mono
            try:
                got = self._board.read()
            except Exception as exc:
                log.warning("the leader's plan could not be read: %s", exc)
            else:
                self._snap = got[1] if got is not None else None
        return self._snap or Snapshot(self._clock.now_us(), 0, [], [], {})


__all__ = [
    "PUBLISH_S",
    "READ_S",
    "FollowerView",
    "PlanBoard",
    "SchedulerView",
    "decode",
    "encode",
]
