"""Jobs in the database: one transaction per method, plain views out (the I/O adapter).

Writes on SQLite start with BEGIN IMMEDIATE (the catalog engine's write option) so the CLI
and a running controller can both write without "database is locked" upgrades failing.
Progress is saved only while the job is open: a cancel that lands between a progress
computation and its save wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import col

from controller.catalog.db import WRITE_OPTION
from controller.jobs.model import (
    JOB_OPEN,
    CameraStatus,
    GoneRange,
    JobError,
    JobNotFound,
    JobRequest,
    JobStateError,
    JobView,
    SegmentState,
)
from controller.jobs.tables import Job, JobGone, JobSegment
from controller.leader.fence import hold_epoch
from controller.traffic import TrafficClass

MAX_LIST = 1000


class JobsUnavailable(RuntimeError):
    """The job database failed or could not be reached; a retry may succeed."""


@contextmanager
def _translated(op: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        raise JobsUnavailable(f"jobs: {op}: {exc.orig}") from exc


def _view(row: Any, gone: Sequence[GoneRange] = ()) -> JobView:
    statuses = tuple(CameraStatus(**s) for s in json.loads(row.cameras_status or "[]"))
    return JobView(
        job_id=row.job_id,
        case_id=row.case_id,
        cameras=tuple(json.loads(row.cameras)),
        start_us=row.start_us,
        end_us=row.end_us,
        traffic_class=TrafficClass(row.traffic_class),
        deadline_us=row.deadline_us,
        state=row.state,
        created_at_us=row.created_at_us,
        updated_at_us=row.updated_at_us,
        finished_at_us=row.finished_at_us,
        requested_by=row.requested_by,
        bytes_done=row.bytes_done,
        bytes_total=row.bytes_total,
        segments_done=row.segments_done,
        segments_total=row.segments_total,
        eta_us=row.eta_us,
        detail=row.detail,
        gone=tuple(gone),
        cameras_status=statuses,
    )


class JobStore:
    """The job, job_segment and job_gone tables (made by the schema migrations)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _write(self, op: str) -> Iterator[Connection]:
        with _translated(op), self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self, op: str) -> Iterator[Connection]:
        with _translated(op), self._engine.connect() as conn:
            yield conn

    def create(self, job_id: str, req: JobRequest, now_us: int, catalog_holds: list[int]) -> None:
        values = {
            "job_id": job_id,
            "case_id": req.case_id,
            "cameras": json.dumps(list(req.cameras)),
            "start_us": req.start_us,
            "end_us": req.end_us,
            "traffic_class": int(req.traffic_class),
            "deadline_us": req.deadline_us,
            "state": JOB_OPEN,
            "created_at_us": now_us,
            "updated_at_us": now_us,
            "requested_by": req.requested_by,
            "detail": "waiting for the devices to report",
            "catalog_holds": json.dumps(catalog_holds),
        }
        with self._write("create job") as conn:
            conn.execute(insert(Job).values(**values))

    def get(self, job_id: str) -> JobView:
        with self._read("get job") as conn:
            row = conn.execute(select(Job).where(col(Job.job_id) == job_id)).first()
            if row is None:
                raise JobNotFound(f"no job {job_id!r}")
            gone = conn.execute(
                select(JobGone)
                .where(col(JobGone.job_id) == job_id)
                .order_by(col(JobGone.camera_id), col(JobGone.start_us))
            ).all()
        return _view(row, [GoneRange(g.camera_id, g.start_us, g.end_us, g.reason) for g in gone])

    def jobs(
        self, state: str | None = None, case_id: str | None = None, limit: int = 100
    ) -> list[JobView]:
        """Newest first."""
        if not 1 <= limit <= MAX_LIST:
            raise JobError(f"limit must be 1..{MAX_LIST}, got {limit}")
        query = select(Job).order_by(col(Job.created_at_us).desc(), col(Job.job_id)).limit(limit)
        if state is not None:
            query = query.where(col(Job.state) == state)
        if case_id is not None:
            query = query.where(col(Job.case_id) == case_id)
        with self._read("list jobs") as conn:
            return [_view(r) for r in conn.execute(query).all()]

    def open_jobs(self) -> list[JobView]:
        query = select(Job).where(col(Job.state) == JOB_OPEN).order_by(col(Job.created_at_us))
        with self._read("open jobs") as conn:
            return [_view(r) for r in conn.execute(query).all()]

    def catalog_holds(self, job_id: str) -> list[int]:
        with self._read("job holds") as conn:
            raw = conn.execute(
                select(col(Job.catalog_holds)).where(col(Job.job_id) == job_id)
            ).scalar()
        return [int(h) for h in json.loads(raw or "[]")]

    def finish(self, job_id: str, state: str, now_us: int, detail: str) -> JobView:
        """Move an open job to `state` (done or cancelled); JobStateError if it is not open."""
        with self._write("finish job") as conn:
            current = conn.execute(select(col(Job.state)).where(col(Job.job_id) == job_id)).scalar()
            if current is None:
                raise JobNotFound(f"no job {job_id!r}")
            if current != JOB_OPEN:
                raise JobStateError(f"job {job_id} is already {current}")
            conn.execute(
                update(Job)
                .where(col(Job.job_id) == job_id)
                .values(state=state, updated_at_us=now_us, finished_at_us=now_us, detail=detail)
            )
        return self.get(job_id)

    def segments(self, job_id: str, state: str | None = None) -> list[SegmentState]:
        query = (
            select(JobSegment)
            .where(col(JobSegment.job_id) == job_id)
            .order_by(col(JobSegment.camera_id), col(JobSegment.start_us))
        )
        if state is not None:
            query = query.where(col(JobSegment.state) == state)
        with self._read("job segments") as conn:
            rows = conn.execute(query).all()
        return [
            SegmentState(
                r.segment_id, r.camera_id, r.start_us, r.duration_us, r.size_bytes, r.state
            )
            for r in rows
        ]

    def save_progress(
        self,
        job_id: str,
        now_us: int,
        changes: dict[str, Any],
        segments: Sequence[SegmentState],
        gone: Sequence[GoneRange],
        statuses: Sequence[CameraStatus],
        fence_epoch: int = 0,
    ) -> bool:
        """Write a progress computation; False (nothing written) if the job is not open.

        `fence_epoch` > 0: only while the scheduler leadership lease still has that epoch
        (the row is read FOR SHARE, so a takeover waits for this write or this write sees
        it); NotLeaderError, nothing written, once a newer leader exists."""
        allowed = {
            "bytes_done", "bytes_total", "segments_done", "segments_total", "eta_us",
            "detail", "state", "finished_at_us",
        }  # fmt: skip
        bad = set(changes) - allowed
        if bad:
            raise JobError(f"cannot change {sorted(bad)} of a job")
        status_json = json.dumps(
            [
                {
                    "camera_id": s.camera_id,
                    "device_id": s.device_id,
                    "complete": s.complete,
                    "waiting": s.waiting,
                }
                for s in statuses
            ]
        )
        with self._write("save job progress") as conn:
            if fence_epoch:
                hold_epoch(conn, fence_epoch, "job progress")
            result = conn.execute(
                update(Job)
                .where(col(Job.job_id) == job_id, col(Job.state) == JOB_OPEN)
                .values(**changes, cameras_status=status_json, updated_at_us=now_us)
            )
            if result.rowcount != 1:
                return False
            self._upsert_segments(conn, job_id, segments, now_us)
            conn.execute(delete(JobGone).where(col(JobGone.job_id) == job_id))
            if gone:
                conn.execute(
                    insert(JobGone),
                    [
                        {
                            "job_id": job_id,
                            "camera_id": g.camera_id,
                            "start_us": g.start_us,
                            "end_us": g.end_us,
                            "reason": g.reason[:512],
                        }
                        for g in gone
                    ],
                )
        return True

    def _upsert_segments(
        self, conn: Connection, job_id: str, segments: Sequence[SegmentState], now_us: int
    ) -> None:
        if not segments:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        rows = [
            {
                "job_id": job_id,
                "segment_id": s.segment_id,
                "camera_id": s.camera_id,
                "start_us": s.start_us,
                "duration_us": s.duration_us,
                "size_bytes": s.size_bytes,
                "state": s.state,
                "updated_at_us": now_us,
            }
            for s in segments
        ]
        for i in range(0, len(rows), 500):
            stmt = dialect.insert(JobSegment).values(rows[i : i + 500])
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["job_id", "segment_id"],
                    set_={
                        k: stmt.excluded[k]
                        for k in ("state", "size_bytes", "duration_us", "updated_at_us")
                    },
                )
            )


def requests_made(engine: Engine, start_us: int, end_us: int) -> list[tuple[str, int, int]]:
    """(state, created_at_us, finished_at_us) of the footage requests made in
    [start_us, end_us), for the KPI report; [] when the jobs table does not exist yet."""
    from sqlalchemy import inspect

    q = select(col(Job.state), col(Job.created_at_us), col(Job.finished_at_us)).where(
        col(Job.created_at_us) >= start_us, col(Job.created_at_us) < end_us
    )
    if not inspect(engine).has_table(Job.__tablename__):
        return []
    with engine.connect() as conn:
        return [(str(s), int(c), int(f or 0)) for s, c, f in conn.execute(q)]
