"""What controller replicas share about the fleet, in the shared database (the shell).

Health reports are split over replicas (MQTT shared subscription): each replica receives only
some. The one that receives a report writes the device's latest health here (`fleet_health`,
one row per device, newest session/seq wins), in batches outside the fleet lock; every replica
reads the rows changed since its last read and folds them into its own view
(`monitor.merge_shared_health`). State, birth and events reach every replica directly.

Alerts are raised by the leader only; it stores the active ones in `fleet_alert` (raised_us
and detail as the leader raised them) and followers serve those rows, so every replica's API
lists the same alerts with the same times and nothing is raised twice. `fleet_setting` holds
the shared-subscription group name: random, made once by the first replica, never logged, so
a device cannot join the controllers' group (Mosquitto 2.0 does not check subscribe ACLs; a
device in the group would receive nothing, its ACL forbids reading, but would swallow its share
of every device's health).

The tables have their own MetaData (`FLEET_METADATA`), registered with the Alembic
environment; the schema migrations make them (revision 0003).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from controller.catalog.models import Device
from controller.fleet.alerts import Alert, AlertKey

FLEET_METADATA = MetaData()

fleet_health = Table(
    "fleet_health",
    FLEET_METADATA,
    Column("device_id", String(128), primary_key=True),
    Column("session", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("seen_us", BigInteger, nullable=False),  # when a replica received it
    Column("skew_s", Float, nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the Health protobuf as received
    Column("replica", String(64), nullable=False),
    Index("ix_fleet_health_seen", "seen_us"),
)

fleet_alert = Table(
    "fleet_alert",
    FLEET_METADATA,
    Column("device_id", String(128), primary_key=True),
    Column("kind", String(64), primary_key=True),
    Column("camera_id", String(128), primary_key=True),
    Column("detail", Text, nullable=False),
    Column("raised_us", BigInteger, nullable=False),
    Column("epoch", BigInteger, nullable=False),  # the leadership that raised it
)

fleet_setting = Table(
    "fleet_setting",
    FLEET_METADATA,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

SHARE_GROUP_KEY = "share_group"
# The epoch of the leadership that owns the alert table (writes of older ones are refused).
ALERT_EPOCH_KEY = "alert_epoch"


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One device's latest health as a replica received it."""

    device_id: str
    session: int
    seq: int
    seen_us: int
    skew_s: float
    payload: bytes


def _insert(conn: Connection) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise ValueError(f"fleet shared state: unsupported database {dialect!r}")


class SharedFleetState:
    """The fleet tables of the shared database, for one replica (`replica` = its client id)."""

    def __init__(self, engine: Engine, replica: str) -> None:
        self._engine = engine
        self.replica = replica

    def share_group(self) -> str:
        """The controllers' shared-subscription group: made once, the same for every replica."""
        with self._engine.begin() as conn:
            row = conn.execute(
                select(fleet_setting.c.value).where(fleet_setting.c.key == SHARE_GROUP_KEY)
            ).first()
            if row is not None:
                return str(row[0])
        value = "vigil-controllers-" + secrets.token_hex(12)
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(fleet_setting).values(key=SHARE_GROUP_KEY, value=value))
        except IntegrityError:  # another replica made it first: use theirs
            pass
        with self._engine.connect() as conn:
            found = conn.execute(
                select(fleet_setting.c.value).where(fleet_setting.c.key == SHARE_GROUP_KEY)
            ).scalar_one()
        return str(found)

    def write_health(self, rows: Sequence[HealthRow]) -> None:
        """Upsert each device's latest health; an older (session, seq) never replaces a newer
        one (two replicas may write the same device in one window)."""
        if not rows:
            return
        with self._engine.begin() as conn:
            ins = _insert(conn)(fleet_health)
            stmt = ins.on_conflict_do_update(
                index_elements=[fleet_health.c.device_id],
                set_={
                    c: ins.excluded[c]
                    for c in ("session", "seq", "seen_us", "skew_s", "payload", "replica")
                },
                where=tuple_(fleet_health.c.session, fleet_health.c.seq)
                < tuple_(ins.excluded.session, ins.excluded.seq),
            )
            conn.execute(
                stmt,
                [
                    {
                        "device_id": r.device_id,
                        "session": r.session,
                        "seq": r.seq,
                        "seen_us": r.seen_us,
                        "skew_s": r.skew_s,
                        "payload": r.payload,
                        "replica": self.replica,
                    }
                    for r in rows
                ],
            )

    def health_since(self, after_us: int) -> list[HealthRow]:
        """Rows other replicas wrote, received after `after_us` (callers re-read a margin:
        replicas' clocks differ). This replica's own rows are already in its view."""
        h = fleet_health
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(h).where(h.c.seen_us > after_us, h.c.replica != self.replica)
            ).all()
        return [
            HealthRow(r.device_id, r.session, r.seq, r.seen_us, r.skew_s, bytes(r.payload))
            for r in rows
        ]

    def claim_alerts(self, epoch: int) -> bool:
        """A new leader takes over the alert table: records its epoch, after which writes of
        an older leadership (one that has not noticed it lost) are refused. False when a
        newer leadership already claimed it."""
        with self._engine.begin() as conn:
            current = self._alert_epoch(conn)
            if current > epoch:
                return False
            if current != epoch:
                ins = _insert(conn)(fleet_setting)
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=[fleet_setting.c.key], set_={"value": ins.excluded.value}
                    ),
                    {"key": ALERT_EPOCH_KEY, "value": str(epoch)},
                )
        return True

    def apply_alerts(
        self, raised: Iterable[Alert], cleared: Iterable[AlertKey], epoch: int
    ) -> bool:
        """The leader's alert changes: raised rows in, cleared rows out, in one transaction;
        False (nothing written) when a newer leadership has claimed the table."""
        raised, cleared = list(raised), list(cleared)
        if not raised and not cleared:
            return True
        t = fleet_alert
        with self._engine.begin() as conn:
            if self._alert_epoch(conn) > epoch:
                return False
            for device_id, kind, camera_id in cleared:
                conn.execute(
                    delete(t).where(
                        and_(
                            t.c.device_id == device_id, t.c.kind == kind, t.c.camera_id == camera_id
                        )
                    )
                )
            if raised:
                self._upsert_alerts(conn, raised, epoch)
        return True

    def replace_alerts(self, active: Iterable[Alert], epoch: int) -> bool:
        """Make the table exactly the leader's active set (heals a lost write; run now and
        then); False when a newer leadership has claimed the table."""
        active = list(active)
        keep = {a.key for a in active}
        t = fleet_alert
        with self._engine.begin() as conn:
            if self._alert_epoch(conn) > epoch:
                return False
            present = conn.execute(select(t.c.device_id, t.c.kind, t.c.camera_id)).all()
            for device_id, kind, camera_id in present:
                if (device_id, kind, camera_id) not in keep:
                    conn.execute(
                        delete(t).where(
                            and_(
                                t.c.device_id == device_id,
                                t.c.kind == kind,
                                t.c.camera_id == camera_id,
                            )
                        )
                    )
            if active:
                self._upsert_alerts(conn, active, epoch)
        return True

    def _alert_epoch(self, conn: Connection) -> int:
        """The epoch of the leadership that last claimed the alert table (locked for the
        transaction on PostgreSQL, so a claim and a stale write cannot interleave)."""
        row = conn.execute(
            select(fleet_setting.c.value)
            .where(fleet_setting.c.key == ALERT_EPOCH_KEY)
            .with_for_update()
        ).first()
        return int(row[0]) if row is not None else 0

    def _upsert_alerts(self, conn: Connection, alerts: list[Alert], epoch: int) -> None:
        t = fleet_alert
        ins = _insert(conn)(t)
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.device_id, t.c.kind, t.c.camera_id],
            set_={c: ins.excluded[c] for c in ("detail", "raised_us", "epoch")},
        )
        conn.execute(
            stmt,
            [
                {
                    "device_id": a.device_id,
                    "kind": a.kind,
                    "camera_id": a.camera_id,
                    "detail": a.detail,
                    "raised_us": a.raised_us,
                    "epoch": epoch,
                }
                for a in alerts
            ],
        )

    def alerts(self) -> list[Alert]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(fleet_alert).order_by(
                    fleet_alert.c.device_id, fleet_alert.c.kind, fleet_alert.c.camera_id
                )
            ).all()
        return [Alert(r.device_id, r.kind, r.camera_id, r.detail, r.raised_us) for r in rows]


class CatalogDeviceSource:
    """The catalog's device registry as a `directory.DeviceSource` (for CachedDirectory):
    the version is (count, newest updated_at_us), one index-free aggregate over a table of
    a few thousand rows, read every few seconds instead of one read per message."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def version(self) -> tuple[int, int]:
        d = Device.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            row = conn.execute(select(func.count(), func.max(d.c.updated_at_us))).one()
        return int(row[0]), int(row[1] or 0)

    def load(self) -> dict[str, tuple[str, str]]:
        d = Device.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            rows = conn.execute(select(d.c.device_id, d.c.county, d.c.site)).all()
        return {r.device_id: (r.county, r.site) for r in rows}

    def lookup(self, device_id: str) -> tuple[str, str] | None:
        d = Device.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            row = conn.execute(
                select(d.c.county, d.c.site).where(d.c.device_id == device_id)
            ).first()
        return None if row is None else (row.county, row.site)


__all__ = [
    "CatalogDeviceSource",
    "FLEET_METADATA",
    "HealthRow",
    "SharedFleetState",
    "fleet_alert",
    "fleet_health",
    "fleet_setting",
]
