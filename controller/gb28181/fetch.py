"""Filing the footage request an upper platform's INVITE for on-agent footage needs (I/O).

The same request the console's "fetch from device" files (`POST /api/v1/footage`: one
camera, evidence class, a deadline an hour ahead), through the same `JobService`, so the
scheduler holds and uploads it at the same priority and the job shows in the console's
footage list and `vigil-controller footage`. Requested by `gb28181:<server_id>` under the
case id `gb28181-<server_id>`, audited `footage_request` as the console's is.

A repeated INVITE for the same range files nothing: an open request covering the range (by
anyone) is reused (`footage.covering`). The look-up and the filing run under one lock, so
INVITEs on this controller's worker threads never race to file twice; two replicas could
(each files one; the scheduler fetches the footage once all the same).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.gb28181 import footage
from controller.jobs import JobError, JobRequest, JobService, JobsUnavailable
from controller.jobs.model import JOB_OPEN, MAX_CAMERAS, request_audit_detail
from controller.jobs.store import MAX_LIST
from controller.traffic import TrafficClass

log = logging.getLogger("vigil.gb28181")
# (action, server_id, org, camera_id, case_id, detail) -> None: one audit entry
Audit = Callable[[str, str, str, str, str, dict[str, Any]], None]


class FootageFetcher:
    def __init__(
        self,
        jobs: JobService,
        now_us: Callable[[], int],
        audit: Audit,
        poke: Callable[[], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.now_us = now_us
        self.audit = audit
        self.poke = poke
        self._lock = threading.Lock()

    def request(
        self, server_id: str, org: str, camera_id: str, start_us: int, end_us: int
    ) -> footage.Filed:
        """The open request covering [start_us, end_us) of `camera_id`, filed if none is."""
        with self._lock:
            try:
                views = self.jobs.jobs(JOB_OPEN, None, MAX_LIST)
            except (JobError, JobsUnavailable) as exc:
                raise footage.FetchError(str(exc)) from exc
            known = [
                footage.OpenJob(v.job_id, v.cameras, v.start_us, v.end_us, v.eta_us)
                for v in views
                if len(v.cameras) <= MAX_CAMERAS
            ]
            found = footage.covering(known, camera_id, start_us, end_us)
            if found is not None:
                return footage.Filed(found, new=False)
            now = self.now_us()
            req = JobRequest(
                cameras=(camera_id,),
                start_us=start_us,
                end_us=end_us,
                deadline_us=now + footage.FETCH_DEADLINE_US,
                case_id=footage.case_id(server_id),
                traffic_class=TrafficClass.EVIDENCE,
                requested_by=f"gb28181:{server_id}",
            )
            try:
                view = self.jobs.request(req)
            except (JobError, JobsUnavailable) as exc:
                raise footage.FetchError(str(exc)) from exc
        detail = request_audit_detail(view)
        self.audit("footage_request", server_id, org, camera_id, view.case_id, detail)
        log.info(
            "upper %s: footage request %s for %s, %.0f s still on its agent",
            server_id, view.job_id, camera_id, (end_us - start_us) / 1e6,
        )  # fmt: skip
        if self.poke is not None:
            self.poke()  # the scheduler looks now, not at its next upkeep
        job = footage.OpenJob(view.job_id, view.cameras, view.start_us, view.end_us, view.eta_us)
        return footage.Filed(job, new=True)
