"""Footage requests: plain data, the checks a request must pass, and its errors. Pure.

An operator asks for cameras x time range x class x deadline x case id; that becomes a job.
A request is checked whole before anything is written; the first problem found is the
error, naming the field and the value:

    JobError (ValueError)       a request or operation that cannot be carried out
    ├── JobNotFound             no job with that id
    └── JobStateError           e.g. cancelling a job that is already done

Job states: `open` (footage still to upload or to account for), `done` (every requested
range is in the cloud or known to be gone, and why), `cancelled` (by an operator).
Segment states in a job: `pending` (on the agent, not uploaded), `uploaded`, `gone`.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from controller.traffic import SchedulerError, TrafficClass

JOB_OPEN = "open"
JOB_DONE = "done"
JOB_CANCELLED = "cancelled"
JOB_STATES = (JOB_OPEN, JOB_DONE, JOB_CANCELLED)

SEG_PENDING = "pending"
SEG_UPLOADED = "uploaded"
SEG_GONE = "gone"

US = 1_000_000
MAX_CAMERAS = 32
MAX_RANGE_US = 31 * 24 * 3600 * US  # like a hold command: a month of recording at most
MAX_DEADLINE_AHEAD_US = 31 * 24 * 3600 * US
MIN_DEADLINE_AHEAD_US = 10 * US  # a deadline sooner than this cannot be met by anything
# A wall clock a few seconds ahead of the operator's must not refuse "until now".
FUTURE_TOLERANCE_US = 5 * US
# Requests are footage: live viewing and plain backfill are not things one requests.
REQUESTABLE = (TrafficClass.EVIDENCE, TrafficClass.EVENT, TrafficClass.ARCHIVE)
CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,95}")
CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
JOB_ID = re.compile(r"[0-9a-f]{12,32}")
HOLD_TAG_PREFIX = "vigil-job-"
MAX_REQUESTER = 128


class JobError(ValueError):
    """The request or operation is refused; nothing was changed."""


class JobNotFound(JobError):
    """No job has that id."""


class JobStateError(JobError):
    """The job is not in a state that allows the operation."""


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What an operator asks for. Times are UTC microseconds; [start_us, end_us)."""

    cameras: tuple[str, ...]
    start_us: int
    end_us: int
    deadline_us: int
    case_id: str
    traffic_class: TrafficClass = TrafficClass.EVIDENCE
    requested_by: str = ""


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobError(f"{name} must be an integer of microseconds, got {value!r}")
    return value


def parse_class(name: str) -> TrafficClass:
    """A requestable class by name (evidence, event, archive), or JobError listing them."""
    try:
        cls = TrafficClass.parse(name)
    except SchedulerError:
        cls = None
    if cls not in REQUESTABLE:
        names = ", ".join(c.name.lower() for c in REQUESTABLE)
        raise JobError(f"class {name!r} cannot be requested (one of: {names})")
    assert cls is not None
    return cls


def validate_request(req: JobRequest, now_us: int, known_cameras: Container[str]) -> JobRequest:
    """`req` with cameras de-duplicated, or JobError naming the first problem.

    Refused: no or too many cameras, a malformed or unknown camera, a reversed, empty,
    over-long or future range, a deadline in the past, too soon or absurdly far, a bad case
    id or class.
    """
    if not isinstance(req, JobRequest):
        raise JobError(f"expected a JobRequest, got {type(req).__name__}")
    cameras: list[str] = []
    for cam in req.cameras:
        if not isinstance(cam, str) or not CAMERA_ID.fullmatch(cam):
            raise JobError(f"camera id {cam!r} is malformed")
        if cam not in cameras:
            cameras.append(cam)
    if not cameras:
        raise JobError("a request needs at least one camera")
    if len(cameras) > MAX_CAMERAS:
        raise JobError(f"a request may name at most {MAX_CAMERAS} cameras, got {len(cameras)}")
    unknown = [c for c in cameras if c not in known_cameras]
    if unknown:
        raise JobError(f"unknown camera(s): {', '.join(unknown)} (not in the registry)")
    start, end = _int("start", req.start_us), _int("end", req.end_us)
    deadline = _int("deadline", req.deadline_us)
    if start <= 0:
        raise JobError(f"start {start} is not a time after 1970")
    if end <= start:
        raise JobError(f"time range is reversed or empty: end {end} is not after start {start}")
    if end - start > MAX_RANGE_US:
        raise JobError(
            f"time range of {(end - start) / US / 86400:.1f} days is longer than the "
            f"{MAX_RANGE_US // US // 86400} days one request may cover"
        )
    if end > now_us + FUTURE_TOLERANCE_US:
        raise JobError(
            f"time range ends {(end - now_us) / US:.0f} s in the future: only recorded "
            "footage can be requested"
        )
    if deadline <= now_us:
        raise JobError(f"deadline is {(now_us - deadline) / US:.0f} s in the past")
    if deadline < now_us + MIN_DEADLINE_AHEAD_US:
        raise JobError(
            f"deadline is only {(deadline - now_us) / US:.1f} s away; give at least "
            f"{MIN_DEADLINE_AHEAD_US // US} s"
        )
    if deadline > now_us + MAX_DEADLINE_AHEAD_US:
        raise JobError(
            f"deadline is {(deadline - now_us) / US / 86400:.0f} days away; at most "
            f"{MAX_DEADLINE_AHEAD_US // US // 86400} days (recordings would be overwritten)"
        )
    if not isinstance(req.case_id, str) or not CASE_ID.fullmatch(req.case_id):
        raise JobError(
            f"case id {req.case_id!r} must be 1-96 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    if req.traffic_class not in REQUESTABLE:
        raise JobError(f"class {req.traffic_class!r} cannot be requested")
    who = req.requested_by
    if not isinstance(who, str) or len(who) > MAX_REQUESTER or not who.isprintable():
        raise JobError(f"requested_by must be printable text of at most {MAX_REQUESTER} chars")
    return JobRequest(
        tuple(cameras), start, end, deadline, req.case_id, TrafficClass(req.traffic_class), who
    )


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise JobNotFound(f"no job {job_id!r} (job ids are 12-32 hex digits)")
    return job_id


def hold_tag(job_id: str) -> str:
    """The case id of the job's holds on agents (see HoldSpec in agent_control.proto)."""
    return HOLD_TAG_PREFIX + job_id


# --- views handed to the API and CLI (plain dataclasses, no ORM) ---------------------------


@dataclass(frozen=True, slots=True)
class GoneRange:
    """Requested footage that will never arrive, and why."""

    camera_id: str
    start_us: int
    end_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class SegmentState:
    segment_id: str
    camera_id: str
    start_us: int
    duration_us: int
    size_bytes: int
    state: str  # SEG_PENDING | SEG_UPLOADED | SEG_GONE


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """One camera of a job: where its footage is, and what the job still waits for."""

    camera_id: str
    device_id: str
    complete: bool
    waiting: str  # why not complete yet ("" when complete)


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    case_id: str
    cameras: tuple[str, ...]
    start_us: int
    end_us: int
    traffic_class: TrafficClass
    deadline_us: int
    state: str
    created_at_us: int
    updated_at_us: int
    finished_at_us: int
    requested_by: str
    bytes_done: int
    bytes_total: int
    segments_done: int
    segments_total: int
    eta_us: int  # 0: unknown (no bandwidth planned yet, or the device is offline)
    detail: str
    gone: tuple[GoneRange, ...] = ()
    cameras_status: tuple[CameraStatus, ...] = ()

    @property
    def percent(self) -> float:
        if self.state == JOB_DONE:
            return 100.0
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 0.0


def request_audit_detail(view: JobView) -> dict[str, Any]:
    """The `footage_request` audit entry's detail, one shape whoever filed it (the console's
    API, an upper platform's INVITE)."""
    return {
        "job_id": view.job_id,
        "cameras": list(view.cameras),
        "from_us": view.start_us,
        "to_us": view.end_us,
        "deadline_us": view.deadline_us,
        "class": view.traffic_class.name.lower(),
    }


def describe_gone(gone: Sequence[GoneRange]) -> str:
    """One line for a job's detail: how much footage is gone, in how many ranges."""
    if not gone:
        return ""
    seconds = sum(g.end_us - g.start_us for g in gone) / US
    return f"{len(gone)} range(s), {seconds:.0f} s of requested footage gone"
