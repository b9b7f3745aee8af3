"""Reading and writing the fleet history and the loss accounting (history_models.py).

Writes come in batches (the fleet's history writer flushes every second or so); reads serve
the KPI report: sums per camera and per hour over a period, transitions with the state each
subject was in when the period began, losses with reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import col

from controller.catalog.accounting import apply_deltas, loss_deltas
from controller.catalog.base import CatalogBase, chunks
from controller.catalog.daily import Sums, period_sums
from controller.catalog.history_models import (
    DELAY_COLUMNS,
    CameraHour,
    LossEvent,
    LossEventRow,
    StateChange,
    StateChangeRow,
)
from controller.catalog.models import Camera, Device
from controller.catalog.timeliness import class_sums, classify

SUM_COLUMNS: tuple[str, ...] = (
    "recorded_us",
    "uploaded_us",
    "evicted_us",
    "gap_us",
    "segments",
    "uploaded_bytes",
    "evicted_bytes",
    *DELAY_COLUMNS,
)
MAX_COLUMNS: tuple[str, ...] = ("video_height",)


class Transition(NamedTuple):
    """A `state_change` row as a tuple (HistoryCatalog.transitions)."""

    subject: str
    device_id: str
    camera_id: str
    state: str
    reason: str
    at_us: int
    id: int


class RegisteredCamera(NamedTuple):
    camera_id: str
    device_id: str
    county: str
    site: str
    device_kind: str
    resource_class: str
    created_at_us: int


@dataclass(frozen=True, slots=True)
class HourSums:
    """`camera_hour` columns summed over some rows; `key` is a camera id or an hour."""

    key: str | int
    sums: dict[str, int]


class HistoryCatalog(CatalogBase):
    def record_changes(self, rows: Sequence[StateChangeRow]) -> None:
        if not rows:
            return
        values = [r.model_dump(exclude={"id"}) for r in rows]
        with self._write("record state changes") as conn:
            conn.execute(insert(StateChange), values)

    def record_losses(self, rows: Sequence[LossEventRow]) -> int:
        """Store loss reports not stored yet (by device and fact id) and account for them
        in `camera_hour` in the same transaction; returns how many were new."""
        if not rows:
            return 0
        with self._write("record losses") as conn:
            return _insert_losses(conn, rows)

    def record_owned_losses(self, rows: Sequence[LossEventRow]) -> list[LossEventRow]:
        """`record_losses` for those of `rows` whose camera the catalog registers to the
        reporting device (its losses are real even once its agent no longer lists it);
        returns the others, not stored."""
        if not rows:
            return []
        cam = Camera.__table__  # type: ignore[attr-defined]
        with self._write("record owned losses") as conn:
            wanted = sorted({r.camera_id for r in rows})
            owner: dict[str, str] = {}
            for part in chunks(wanted):
                query = select(cam.c.camera_id, cam.c.device_id).where(cam.c.camera_id.in_(part))
                owner.update((str(c), str(d)) for c, d in conn.execute(query))
            owned = [r for r in rows if owner.get(r.camera_id) == r.device_id]
            _insert_losses(conn, owned)
        return [r for r in rows if owner.get(r.camera_id) != r.device_id]

    def changes(self, start_us: int, end_us: int) -> list[StateChangeRow]:
        """Transitions in [start_us, end_us), plus each subject's last one before start_us
        (the state it was in when the period began), in time order."""
        found = self._changes(start_us, end_us)
        rows = [StateChangeRow.model_validate(dict(r._mapping)) for r in found]
        return sorted(rows, key=lambda r: (r.at_us, r.id or 0))

    def transitions(self, start_us: int, end_us: int) -> list[Transition]:
        """What `changes` reads as plain tuples, in the same order: a month of a city is
        ~30,000 rows, and validating each as a model cost more than reading it."""
        rows = [
            Transition(r.subject, r.device_id, r.camera_id, r.state, r.reason, r.at_us, r.id)
            for r in self._changes(start_us, end_us)
        ]
        return sorted(rows, key=lambda r: (r.at_us, r.id))

    def _changes(self, start_us: int, end_us: int) -> list[Any]:
        sc = StateChange.__table__  # type: ignore[attr-defined]
        last = (
            select(sc.c.subject, sc.c.device_id, sc.c.camera_id, func.max(sc.c.id).label("id"))
            .where(sc.c.at_us < start_us)
            .group_by(sc.c.subject, sc.c.device_id, sc.c.camera_id)
            .subquery()
        )
        with self._read("state changes") as conn:
            before = conn.execute(select(sc).join(last, sc.c.id == last.c.id)).all()
            within = conn.execute(
                select(sc).where(and_(sc.c.at_us >= start_us, sc.c.at_us < end_us))
            ).all()
        return [*before, *within]

    def registry(self) -> list[RegisteredCamera]:
        """Every camera with its device's place and kind, by camera id (the report's
        registry: one query, no model validation for 17,088 rows)."""
        cam, dev = Camera.__table__, Device.__table__  # type: ignore[attr-defined]
        q = (
            select(
                cam.c.camera_id,
                cam.c.device_id,
                dev.c.county,
                dev.c.site,
                dev.c.kind,
                cam.c.resource_class,
                cam.c.created_at_us,
            )
            .join(dev, dev.c.device_id == cam.c.device_id)
            .order_by(cam.c.camera_id)
        )
        with self._read("registry") as conn:
            return [RegisteredCamera(*r) for r in conn.execute(q)]

    def losses(self, start_us: int, end_us: int) -> list[LossEventRow]:
        """Loss reports whose time range overlaps [start_us, end_us)."""
        q = select(LossEvent).where(
            col(LossEvent.start_us) < end_us, col(LossEvent.end_us) > start_us
        )
        with self._read("losses") as conn:
            return [LossEventRow.model_validate(dict(r._mapping)) for r in conn.execute(q)]

    def hour_sums(
        self,
        start_us: int,
        end_us: int,
        by: str,
        cameras: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
    ) -> list[HourSums]:
        """The accounting summed over the hours starting in [start_us, end_us): per camera
        (`by="camera"`), per hour (`by="hour"`) or per bucket (`by="bucket"`: the local day
        for whole days inside the period, the hour at its edges); only `cameras` when given;
        only the `columns` of SUM_COLUMNS when given (each sum costs: a month is 12.3 M
        hourly rows). Whole days are read from `camera_day` (controller/catalog/daily.py)."""
        group = ("camera_id",) if by == "camera" else ("bucket",)
        sums = tuple(columns) if columns is not None else SUM_COLUMNS
        maxes = MAX_COLUMNS if columns is None else ()
        with self._read("hour sums") as conn:
            want = Sums("camera", start_us, end_us, group, sums, maxes, cameras, by != "hour")
            merged = period_sums(conn, want)
        return [HourSums(k[0], v) for k, v in merged.items()]  # type: ignore[arg-type]

    def classify_segments(self, classes: Mapping[str, int]) -> int:
        """Record the traffic class the scheduler leased each segment under (segment id ->
        TrafficClass value), for those committed and not classified yet; returns how many
        were classified now. ClassError, nothing written, for an unknown class."""
        if not classes:
            return 0
        with self._write("classify segments") as conn:
            return len(classify(conn, classes))

    def class_sums(
        self, start_us: int, end_us: int, cameras: Sequence[str] | None = None
    ) -> dict[str, dict[int, list[int]]]:
        """camera -> traffic class -> upload-delay histogram over the hours starting in
        [start_us, end_us) (`controller.catalog.timeliness`)."""
        with self._read("class sums") as conn:
            return class_sums(conn, start_us, end_us, cameras)

    def first_data_us(self) -> int | None:
        """The earliest time any history or accounting exists (None: none yet)."""
        with self._read("first data") as conn:
            hour = conn.execute(select(func.min(col(CameraHour.hour_us)))).scalar()
            change = conn.execute(select(func.min(col(StateChange.at_us)))).scalar()
        found = [int(v) for v in (hour, change) if v is not None]
        return min(found) if found else None


def _insert_losses(conn: Connection, rows: Sequence[LossEventRow]) -> int:
    """Insert the loss reports not stored yet and account for the new ones (one transaction:
    `conn` is in one); returns how many were new."""
    new = 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for r in rows:
        values = r.model_dump(exclude={"id"})
        values["fact_id"] = r.fact_id or f"s{r.session}:{r.seq}"
        stmt = dialect.insert(LossEvent.__table__).values(**values)  # type: ignore[attr-defined]
        stmt = stmt.on_conflict_do_nothing(index_elements=["device_id", "fact_id"]).returning(
            col(LossEvent.id)
        )
        if conn.execute(stmt).first() is not None:  # new (rowcount is not reliable)
            new += 1
            apply_deltas(conn, loss_deltas(r.camera_id, r.start_us, r.end_us, r.size_bytes))
    return new
