"""Footage requests ("jobs"): cameras x time range x class x deadline x case id.

Pure core: `model` (request checks, errors, plain views), `progress` (interval arithmetic,
per-camera progress, gone ranges, ETA). Shell: `tables` (SQLModel), `store` (database),
`service` (`JobService`, what the API and CLI call), `tracker` (what the scheduler calls to
hold, prioritise and track open jobs). `vigil-controller footage ...` is in jobs/cli.py.
"""

from controller.jobs.model import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_OPEN,
    CameraStatus,
    GoneRange,
    JobError,
    JobNotFound,
    JobRequest,
    JobStateError,
    JobView,
    SegmentState,
    parse_class,
)
from controller.jobs.service import JobService
from controller.jobs.store import JobStore, JobsUnavailable

__all__ = [
    "JOB_CANCELLED",
    "JOB_DONE",
    "JOB_OPEN",
    "CameraStatus",
    "GoneRange",
    "JobError",
    "JobNotFound",
    "JobRequest",
    "JobService",
    "JobStateError",
    "JobStore",
    "JobView",
    "JobsUnavailable",
    "SegmentState",
    "parse_class",
]
