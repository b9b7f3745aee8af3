"""Footage requests across organisations (申请 → 审批): ask, list, approve, refuse, collect.

    POST /api/v1/share-requests                 ask another organisation for its cameras
    GET  /api/v1/share-requests?direction=      mine (my organisation asked) | to_me (asked of it)
    POST /api/v1/share-requests/{id}/approve    an admin of the owner: a share grant is minted
    POST /api/v1/share-requests/{id}/refuse     an admin of the owner, with a note
    POST /api/v1/share-requests/{id}/grant      the requester collects the grant's token

The decisions are `controller.grants.policy_sharing`'s; this module reads and writes the audit
chain only. Like the share lists (`shares.py`) there is no second table: the request
(`share_requested`), the decision (`share_approved` / `share_refused`), the grant
(`grant_minted`), each collection (`share_collected`) and every use share one id, so an
auditor searching that id sees the whole story. Of two admins deciding at once, on one
replica or two, exactly one decision is recorded: it is written only if none is in the audit
log yet, checked under the log's chain lock; the other gets 400 "decided meanwhile".
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controller.api.common import info_for
from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.routes.grants import grant_out
from controller.api.schemas import GrantOut, _Request
from controller.audit.chain import AuditEntry, AuditEvent
from controller.grants.codec import Chain, encode_token, sign_grant
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import GRANT_ID, MAX_ID_CHARS, CameraInfo, Operation
from controller.grants.policy import User
from controller.grants.policy_sharing import (
    MAX_REQUEST_CAMERAS,
    Decision,
    RequestState,
    RequestView,
    ShareAsk,
    ask_detail,
    ask_from,
    body_detail,
    body_from,
    check_approver,
    check_ask,
    fold,
    plan_approved_share,
)

router = APIRouter(prefix="/api/v1", tags=["sharing"])

MAX_SCANNED = 1000  # newest entries of each kind looked at (the audit search's own bound)
_decide = threading.Lock()  # one decision at a time in this process
DECISION_ACTIONS = ("share_approved", "share_refused")


class AskIn(_Request):
    cameras: list[str] = Field(min_length=1, max_length=MAX_REQUEST_CAMERAS)
    from_us: int
    to_us: int
    operations: list[Operation] = Field(min_length=1, max_length=3)
    reason: str = Field(max_length=512)
    case_id: str = Field(default="", max_length=MAX_ID_CHARS)
    lifetime_s: int = Field(default=86400, ge=60, le=366 * 86400)


class DecideIn(_Request):
    note: str = Field(default="", max_length=512)
    operations: list[Operation] | None = Field(default=None, min_length=1, max_length=3)
    lifetime_s: int | None = Field(default=None, ge=60, le=366 * 86400)


class RequestOut(BaseModel):
    request_id: str
    requester_user: str
    requester_org: str
    owner_org: str
    cameras: list[str]
    from_us: int
    to_us: int
    operations: list[str]
    reason: str
    case_id: str
    lifetime_s: int
    asked_us: int
    lapses_us: int
    state: str
    decided_by: str = ""
    decided_org: str = ""
    decided_us: int = 0
    note: str = ""
    expires_us: int = 0


def _out(v: RequestView) -> RequestOut:
    a, d = v.ask, v.decision
    return RequestOut(
        request_id=a.request_id,
        requester_user=a.requester_user,
        requester_org=a.requester_org,
        owner_org=a.owner_org,
        cameras=list(a.camera_ids),
        from_us=a.from_us,
        to_us=a.to_us,
        operations=sorted(op.value for op in a.operations),
        reason=a.reason,
        case_id=a.case_id,
        lifetime_s=a.lifetime_us // 1_000_000,
        asked_us=a.asked_at_us,
        lapses_us=v.lapses_us,
        state=v.state.value,
        decided_by=d.by_user if d else "",
        decided_org=d.by_org if d else "",
        decided_us=d.at_us if d else 0,
        note=d.note if d else "",
        expires_us=d.expires_us if d else 0,
    )


def _detail(entry: AuditEntry) -> dict[str, Any]:
    try:
        value = json.loads(entry.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ask_of(entry: AuditEntry) -> ShareAsk | None:
    return ask_from(
        entry.grant_id,
        entry.actor_user,
        entry.actor_org,
        entry.case_id,
        entry.at_us,
        _detail(entry),
    )


def _decision_of(entry: AuditEntry) -> Decision:
    d = _detail(entry)
    return Decision(
        request_id=entry.grant_id,
        approved=entry.action == "share_approved",
        by_user=entry.actor_user,
        by_org=entry.actor_org,
        at_us=entry.at_us,
        note=str(d.get("note", "")),
        expires_us=int(d.get("expires_us", 0) or 0),
    )


def _views(deps: ApiDeps, request_id: str | None = None) -> list[RequestView]:
    """Requests (newest first) with their state; one request when `request_id` is given."""
    search = deps.audit.search
    asked = search(action="share_requested", grant=request_id, limit=MAX_SCANNED)
    asks = [a for a in (_ask_of(e) for e in asked if e.outcome == "ok") if a is not None]
    decisions = [
        _decision_of(e)
        for action in ("share_approved", "share_refused")
        for e in search(action=action, grant=request_id, limit=MAX_SCANNED)
        if e.outcome == "ok"
    ]
    revoked = {e.grant_id for e in search(action="grant_revoked", grant=request_id, limit=1000)}
    return fold(deps.policy, asks, decisions, revoked, deps.clock.now_us())


def _one(deps: ApiDeps, request_id: str, action: str, user: User) -> RequestView:
    views = _views(deps, request_id) if GRANT_ID.fullmatch(request_id) else []
    if not views:
        exc = GrantRefused(Reason.UNKNOWN_GRANT, f"no request {request_id[:40]!r}")
        deps.grants.refuse(exc, action, user, grant_id=request_id[:64])
    return views[0]


def _cameras(deps: ApiDeps, ids: list[str]) -> dict[str, CameraInfo]:
    found: dict[str, CameraInfo] = {}
    for cam_id in ids:
        row = deps.catalog.camera(cam_id) if 0 < len(cam_id) <= MAX_ID_CHARS else None
        if row is not None:
            try:
                found[cam_id] = info_for(deps, row)
            except ValueError:
                continue  # reported as an unknown camera by check_ask
    return found


@router.post("/share-requests", response_model=RequestOut, status_code=201)
def ask(body: AskIn, user: UserDep, deps: DepsDep) -> RequestOut:
    """Ask the organisation owning `cameras` for their footage in [from, to)."""
    request = ShareAsk(
        request_id=secrets.token_hex(16),
        requester_user=user.user_id,
        requester_org=user.org_id,
        owner_org="",
        camera_ids=tuple(dict.fromkeys(body.cameras)),
        from_us=body.from_us,
        to_us=body.to_us,
        operations=frozenset(body.operations),
        reason=body.reason,
        case_id=body.case_id,
        lifetime_us=body.lifetime_s * 1_000_000,
        asked_at_us=deps.clock.now_us(),
    )
    try:
        owner = check_ask(deps.policy, user, request, _cameras(deps, body.cameras))
    except GrantRefused as exc:
        deps.grants.refuse(
            exc,
            "share_request",
            user,
            camera_id=body.cameras[0][:MAX_ID_CHARS],
            case_id=body.case_id,
        )
    request = replace(request, owner_org=owner)
    deps.grants.record(
        "share_requested",
        user,
        grant_id=request.request_id,
        camera_id=request.camera_ids[0],
        case_id=request.case_id,
        detail=ask_detail(request),
    )
    return _out(fold(deps.policy, [request], [], set(), request.asked_at_us)[0])


@router.get("/share-requests", response_model=list[RequestOut])
def requests(
    user: UserDep,
    deps: DepsDep,
    direction: Annotated[str, Query(pattern="^(mine|to_me)$")] = "mine",
) -> list[RequestOut]:
    """`mine`: what my organisation asked of others; `to_me`: what others asked of mine."""
    views = _views(deps)
    if direction == "mine":
        return [_out(v) for v in views if v.ask.requester_org == user.org_id]
    return [_out(v) for v in views if v.ask.owner_org == user.org_id]


def _decidable(deps: ApiDeps, view: RequestView, action: str, user: User) -> None:
    try:
        check_approver(deps.policy, user, view.ask)
        if view.state is not RequestState.PENDING:
            raise GrantRefused(
                Reason.BAD_REQUEST, f"request {view.ask.request_id} is {view.state.value}"
            )
    except GrantRefused as exc:
        deps.grants.refuse(exc, action, user, grant_id=view.ask.request_id)


def _record_decision(
    deps: ApiDeps, events: list[AuditEvent], view: RequestView, action: str, user: User
) -> None:
    """Write a decision unless one is already recorded: another admin, on this or another
    replica, may have decided since `_decidable` looked. The audit log checks under its
    chain lock (`AuditLog.append_first`), so exactly one decision counts."""
    request_id = view.ask.request_id
    if deps.audit.append_first(events, request_id, DECISION_ACTIONS) is None:
        exc = GrantRefused(Reason.BAD_REQUEST, f"request {request_id} was decided meanwhile")
        deps.grants.refuse(exc, action, user, grant_id=request_id)


@router.post("/share-requests/{request_id}/approve", response_model=RequestOut)
def approve(request_id: str, body: DecideIn, user: UserDep, deps: DepsDep) -> RequestOut:
    """Approve: a share grant for the requester in person, issued by the owner."""
    action = "share_approve"
    with _decide:
        view = _one(deps, request_id, action, user)
        _decidable(deps, view, action, user)
        ask = view.ask
        try:
            grant = plan_approved_share(
                deps.policy,
                user,
                ask,
                deps.clock.now_us(),
                operations=None if body.operations is None else frozenset(body.operations),
                lifetime_us=None if body.lifetime_s is None else body.lifetime_s * 1_000_000,
            )
        except GrantRefused as exc:
            deps.grants.refuse(exc, action, user, grant_id=request_id)
        link = sign_grant(grant, deps.grants.keys.root)
        deps.grants.store.record_seen(Chain((link,)), grant.issued_at_us)
        approved = deps.grants.event(
            "share_approved",
            user,
            grant_id=grant.grant_id,
            camera_id=ask.camera_ids[0],
            case_id=ask.case_id,
            detail={**body_detail(grant), "note": body.note},
        )
        minted = deps.grants.event(
            "grant_minted",
            user,
            grant_id=grant.grant_id,
            case_id=grant.case_id,
            detail={
                "holder_org": grant.holder_org,
                "holder_user": grant.holder_user,
                "operations": sorted(grant.operations),
                "cameras": sorted(grant.camera_ids),
                "areas": [],
                "from_us": grant.footage_from_us,
                "to_us": grant.footage_to_us,
                "expires_us": grant.expires_us,
                "delegable": False,
                "watermark_id": grant.watermark_id,
                "purpose": grant.purpose,
                "request": grant.grant_id,
            },
        )
        _record_decision(deps, [approved, minted], view, action, user)
    return _out(_views(deps, request_id)[0])


@router.post("/share-requests/{request_id}/refuse", response_model=RequestOut)
def refuse_request(request_id: str, body: DecideIn, user: UserDep, deps: DepsDep) -> RequestOut:
    action = "share_refuse"
    with _decide:
        view = _one(deps, request_id, action, user)
        _decidable(deps, view, action, user)
        refused = deps.grants.event(
            "share_refused",
            user,
            grant_id=request_id,
            camera_id=view.ask.camera_ids[0],
            case_id=view.ask.case_id,
            detail={"note": body.note},
        )
        _record_decision(deps, [refused], view, action, user)
    return _out(_views(deps, request_id)[0])


@router.post("/share-requests/{request_id}/grant", response_model=GrantOut)
def collect(request_id: str, user: UserDep, deps: DepsDep) -> GrantOut:
    """The approved grant's token, for the requester only (it names them as holder). The
    controller keeps no tokens: the grant is signed again from what the approval recorded."""
    action = "share_collect"
    view = _one(deps, request_id, action, user)
    ask = view.ask
    try:
        if user.user_id != ask.requester_user or user.org_id != ask.requester_org:
            raise GrantRefused(
                Reason.WRONG_HOLDER, f"request {request_id} was made by {ask.requester_user!r}"
            )
        if view.state is not RequestState.APPROVED:
            raise GrantRefused(
                Reason.REVOKED if view.state is RequestState.REVOKED else Reason.BAD_REQUEST,
                f"request {request_id} is {view.state.value}",
            )
        entry = deps.audit.search(action="share_approved", grant=request_id, limit=1000)[-1]
        grant = body_from(ask, _detail(entry))
    except (GrantRefused, IndexError, KeyError, ValueError) as exc:
        if not isinstance(exc, GrantRefused):
            exc = GrantRefused(Reason.BAD_REQUEST, f"request {request_id} has no usable approval")
        deps.grants.refuse(exc, action, user, grant_id=request_id)
    link = sign_grant(grant, deps.grants.keys.root)
    deps.grants.record("share_collected", user, grant_id=request_id, camera_id=ask.camera_ids[0])
    return grant_out(encode_token([link]), Chain((link,)))
