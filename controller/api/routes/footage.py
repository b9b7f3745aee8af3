"""Footage requests over HTTP: `/api/v1/footage` (the jobs of `controller.jobs`).

An operator asks for cameras x time range x class x deadline x case id; the answer is a job
whose progress (bytes, segments, ETA), per-camera state and gone ranges (with the reason
each is gone) can be followed until it is done or cancelled. The job lives in the database,
so it survives a controller restart and is the same job `vigil-controller footage` shows.

Who may do what:
- request and cancel: operators and admins, and only for cameras their organisation is
  entitled to (the same entitlement the camera list and grants use);
- list and show: also viewers, and only jobs whose every camera they may see (a job over
  another county's camera is "not found" to them, so its existence does not leak).

Every request and cancel is audited (user, cameras, case id), and so is every refusal. The
route checks what the HTTP layer can decide itself (role, camera count, case id present,
cameras known and entitled) before the job service checks the rest (range, deadline,
class); a refused request writes no job and no hold.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller.api.common import camera_for, info_for, may_see, refuse
from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.schemas import (
    CameraStatusOut,
    FootageCreate,
    GoneOut,
    JobOut,
    JobSegmentOut,
)
from controller.grants.policy import Role, User
from controller.jobs import (
    JobError,
    JobNotFound,
    JobRequest,
    JobService,
    JobStateError,
    JobsUnavailable,
    JobView,
    parse_class,
)
from controller.jobs.model import JOB_STATES, MAX_CAMERAS, request_audit_detail

router = APIRouter(prefix="/api/v1", tags=["footage"])

REQUESTERS = frozenset({Role.ADMIN, Role.OPERATOR})
READERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})
MAX_LISTED_JOBS = 1000


def job_out(view: JobView) -> JobOut:
    """The API shape of a job (pure)."""
    return JobOut(
        job_id=view.job_id,
        case_id=view.case_id,
        cameras=list(view.cameras),
        from_us=view.start_us,
        to_us=view.end_us,
        traffic_class=view.traffic_class.name.lower(),
        deadline_us=view.deadline_us,
        state=view.state,
        created_at_us=view.created_at_us,
        updated_at_us=view.updated_at_us,
        finished_at_us=view.finished_at_us,
        requested_by=view.requested_by,
        bytes_done=view.bytes_done,
        bytes_total=view.bytes_total,
        segments_done=view.segments_done,
        segments_total=view.segments_total,
        percent=round(view.percent, 1),
        eta_us=view.eta_us,
        detail=view.detail,
        gone=[
            GoneOut(camera_id=g.camera_id, start_us=g.start_us, end_us=g.end_us, reason=g.reason)
            for g in view.gone
        ],
        cameras_status=[
            CameraStatusOut(
                camera_id=c.camera_id, device_id=c.device_id, complete=c.complete, waiting=c.waiting
            )
            for c in view.cameras_status
        ],
    )


def _service(deps: ApiDeps, action: str, who: User, **fields: Any) -> JobService:
    if deps.jobs is None:
        refuse(
            deps,
            action,
            who,
            "jobs_unavailable",
            "this controller runs no job service",
            status=503,
            **fields,
        )
    return deps.jobs


def _role(deps: ApiDeps, action: str, who: User, allowed: frozenset[Role], what: str) -> None:
    if who.role not in allowed:
        names = " or ".join(sorted(r.value for r in allowed))
        refuse(deps, action, who, "role_not_allowed", f"only {names} may {what}")


def _visible_cameras(deps: ApiDeps, who: User) -> set[str]:
    out: set[str] = set()
    for row in deps.catalog.cameras():
        try:
            if may_see(deps, who, info_for(deps, row)):
                out.add(row.camera_id)
        except ValueError:
            continue  # a camera whose place cannot form an area path is nobody's to see
    return out


def _job(deps: ApiDeps, jobs: JobService, job_id: str, action: str, who: User) -> JobView:
    """The job if it exists and the user may see all its cameras; an audited 404 otherwise."""
    try:
        view = jobs.get(job_id)
    except JobNotFound as exc:
        refuse(deps, action, who, "not_found", str(exc), detail={"job_id": job_id[:64]})
    except JobsUnavailable as exc:
        refuse(deps, action, who, "jobs_unavailable", str(exc), status=503)
    if not set(view.cameras) <= _visible_cameras(deps, who):
        refuse(
            deps,
            action,
            who,
            "not_found",
            f"no job {job_id!r} visible to {who.org_id!r}",
            detail={"job_id": job_id},
        )
    return view


@router.post("/footage", response_model=JobOut, status_code=201)
def request_footage(body: FootageCreate, user: UserDep, deps: DepsDep) -> JobOut:
    action = "footage_request"
    cameras = list(dict.fromkeys(c[:128] for c in body.cameras))
    audit: dict[str, Any] = {
        "camera_id": cameras[0] if cameras else "",
        "case_id": body.case_id[:128],
        "detail": {"cameras": cameras[: MAX_CAMERAS + 1]},
    }
    _role(deps, action, user, REQUESTERS, "request footage")
    jobs = _service(deps, action, user, **audit)
    if len(cameras) > MAX_CAMERAS:
        refuse(
            deps,
            action,
            user,
            "bad_request",
            f"a request may name at most {MAX_CAMERAS} cameras, got {len(cameras)}",
            **audit,
        )
    if not body.case_id.strip():
        refuse(deps, action, user, "case_required", "a footage request needs a case id", **audit)
    for camera_id in cameras:
        _row, info = camera_for(deps, camera_id, action, user)
        if not may_see(deps, user, info):
            refuse(
                deps,
                action,
                user,
                "not_entitled",
                f"{user.org_id!r} is not entitled to camera {camera_id!r}",
                **audit,
            )
    try:
        req = JobRequest(
            cameras=tuple(cameras),
            start_us=body.from_us,
            end_us=body.to_us,
            deadline_us=body.deadline_us,
            case_id=body.case_id,
            traffic_class=parse_class(body.traffic_class),
            requested_by=user.user_id,
        )
        view = jobs.request(req)
    except JobError as exc:
        refuse(deps, action, user, "bad_request", str(exc), **audit)
    except JobsUnavailable as exc:
        refuse(deps, action, user, "jobs_unavailable", str(exc), status=503, **audit)
    deps.grants.record(
        action,
        user,
        camera_id=cameras[0],
        case_id=view.case_id,
        detail=request_audit_detail(view),
    )
    scheduler = deps.scheduler
    if scheduler is not None:
        scheduler.poke()
    return job_out(view)


@router.get("/footage", response_model=list[JobOut])
def list_footage(
    user: UserDep,
    deps: DepsDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    case: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS)] = 100,
) -> list[JobOut]:
    action = "footage_list"
    _role(deps, action, user, READERS, "list footage requests")
    jobs = _service(deps, action, user)
    if state is not None and state not in JOB_STATES:
        refuse(
            deps,
            action,
            user,
            "bad_request",
            f"state must be one of {', '.join(JOB_STATES)}, got {state[:16]!r}",
        )
    try:
        views = jobs.jobs(state, case or None, limit)
    except JobError as exc:
        refuse(deps, action, user, "bad_request", str(exc))
    except JobsUnavailable as exc:
        refuse(deps, action, user, "jobs_unavailable", str(exc), status=503)
    visible = _visible_cameras(deps, user)
    return [job_out(v) for v in views if set(v.cameras) <= visible]


@router.get("/footage/{job_id}", response_model=JobOut)
def show_footage(job_id: str, user: UserDep, deps: DepsDep) -> JobOut:
    action = "footage_show"
    _role(deps, action, user, READERS, "see footage requests")
    return job_out(_job(deps, _service(deps, action, user), job_id, action, user))


@router.get("/footage/{job_id}/segments", response_model=list[JobSegmentOut])
def footage_segments(job_id: str, user: UserDep, deps: DepsDep) -> list[JobSegmentOut]:
    action = "footage_show"
    _role(deps, action, user, READERS, "see footage requests")
    jobs = _service(deps, action, user)
    _job(deps, jobs, job_id, action, user)
    try:
        rows = jobs.segments(job_id)
    except JobsUnavailable as exc:
        refuse(deps, action, user, "jobs_unavailable", str(exc), status=503)
    return [
        JobSegmentOut(
            segment_id=s.segment_id,
            camera_id=s.camera_id,
            start_us=s.start_us,
            duration_us=s.duration_us,
            size_bytes=s.size_bytes,
            state=s.state,
        )
        for s in rows
    ]


@router.post("/footage/{job_id}/cancel", response_model=JobOut)
def cancel_footage(job_id: str, user: UserDep, deps: DepsDep) -> JobOut:
    action = "footage_cancel"
    _role(deps, action, user, REQUESTERS, "cancel footage requests")
    jobs = _service(deps, action, user)
    view = _job(deps, jobs, job_id, action, user)
    audit: dict[str, Any] = {
        "camera_id": view.cameras[0] if view.cameras else "",
        "case_id": view.case_id,
        "detail": {"job_id": view.job_id, "cameras": list(view.cameras)},
    }
    try:
        done = jobs.cancel(job_id)
    except JobStateError as exc:
        refuse(deps, action, user, "job_finished", str(exc), status=409, **audit)
    except JobError as exc:
        refuse(deps, action, user, "bad_request", str(exc), **audit)
    except JobsUnavailable as exc:
        refuse(deps, action, user, "jobs_unavailable", str(exc), status=503, **audit)
    deps.grants.record(action, user, **audit)
    scheduler = deps.scheduler
    if scheduler is not None:
        scheduler.poke()
    return job_out(done)
