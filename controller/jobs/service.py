"""`JobService`: what the HTTP API and the CLI call to request, cancel and inspect footage.

Plain methods, plain dataclasses (`JobView`, `SegmentState`); no web framework types. A
request is validated whole (pure checks in model.py, cameras against the registry) before
anything is written. Creating a job also puts a legal hold on the requested range in the
cloud (catalog holds, under the operator's case id) so retention never deletes footage
someone asked for; cancelling releases those holds again. Holds on the agents, leases and
progress are the scheduler's business: it reads open jobs from the same tables.
"""

from __future__ import annotations

import logging
import uuid

from controller.catalog import Catalog, CatalogError
from controller.clock import Clock
from controller.jobs.model import (
    JOB_CANCELLED,
    JobError,
    JobRequest,
    JobView,
    SegmentState,
    check_job_id,
    validate_request,
)
from controller.jobs.store import JobStore

log = logging.getLogger("vigil.jobs")


class JobService:
    """Footage requests on top of the catalog's database."""

    def __init__(self, catalog: Catalog, clock: Clock, store: JobStore | None = None) -> None:
        self._catalog = catalog
        self._clock = clock
        self._store = store or JobStore(catalog.engine)

    @property
    def store(self) -> JobStore:
        return self._store

    def request(self, req: JobRequest) -> JobView:
        """Create a job; JobError (nothing written) if the request is not acceptable."""
        now = self._clock.now_us()
        known = {c.camera_id for c in self._catalog.cameras()}
        req = validate_request(req, now, known)
        job_id = uuid.uuid4().hex[:16]
        holds: list[int] = []
        try:
            for camera in req.cameras:
                holds.append(self._catalog.add_hold(camera, req.start_us, req.end_us, req.case_id))
            self._store.create(job_id, req, now, holds)
        except BaseException:  # undo the holds, then let the error through
            for hold in holds:
                self._release(hold)
            raise
        log.info(
            "job %s: case %s, %d camera(s), %.0f s of footage, deadline in %.0f s",
            job_id,
            req.case_id,
            len(req.cameras),
            (req.end_us - req.start_us) / 1e6,
            (req.deadline_us - now) / 1e6,
        )
        return self._store.get(job_id)

    def cancel(self, job_id: str) -> JobView:
        """Cancel an open job (JobStateError if it is done or cancelled already)."""
        check_job_id(job_id)
        view = self._store.finish(
            job_id, JOB_CANCELLED, self._clock.now_us(), "cancelled by an operator"
        )
        for hold in self._store.catalog_holds(job_id):
            self._release(hold)
        log.info("job %s cancelled", job_id)
        return view

    def get(self, job_id: str) -> JobView:
        return self._store.get(check_job_id(job_id))

    def jobs(
        self, state: str | None = None, case_id: str | None = None, limit: int = 100
    ) -> list[JobView]:
        return self._store.jobs(state, case_id, limit)

    def segments(self, job_id: str) -> list[SegmentState]:
        self.get(job_id)  # JobNotFound for an unknown id
        return self._store.segments(job_id)

    def _release(self, hold_id: int) -> None:
        try:
            self._catalog.release_hold(hold_id)
        except CatalogError as exc:
            log.warning("could not release catalog hold %d: %s", hold_id, exc)


__all__ = ["JobError", "JobService"]
