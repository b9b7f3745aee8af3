"""Cross-organisation sharing on request: the policy rule, the grant an approval mints and the
state of every request (pure; the HTTP shell is `controller.api.routes.share_requests`).

A user of one organisation asks another for access to some of its cameras over a footage
window, with a reason (and a case id for more than 24 h). An admin of the organisation that
owns the cameras approves (a share grant is minted) or refuses; a request nobody answers lapses
after `Policy.request_ttl_us`. The request, the decision, the grant and every use are audit
entries sharing one id: the request id *is* the id of the grant an approval mints.

The rule (`owner_shared`): a root grant whose issuer is the organisation owning the camera, and
that names the camera itself (not an area), authorizes its holder even where the entitlements
do not: the owner consented. Only `plan_approved_share` writes such an issuer (ordinary root
grants are issued by the city), only for an admin of the owner, never delegable, for at most
`Policy.share_lifetime_us`. The city's own cameras are outside this rule (a city-issued grant
must stay subject to the entitlements), and `Policy.cross_org_requests = false` turns every
approved share off at once, the next time it is presented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import (
    DAY_US,
    GRANT_ID,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    CameraInfo,
    GrantBody,
    Operation,
    check_body,
)
from controller.grants.policy import Policy, Role, User, allowed_operations

MAX_REQUEST_CAMERAS = 16
REQUESTERS = frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER})


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    LAPSED = "lapsed"  # nobody answered within the policy's request_ttl
    EXPIRED = "expired"  # approved, and the grant's lifetime is over
    REVOKED = "revoked"  # approved, and the grant was revoked since


@dataclass(frozen=True, slots=True)
class ShareAsk:
    """One request, as recorded (`share_requested`)."""

    request_id: str  # 32 hex digits: the id of the grant an approval mints
    requester_user: str
    requester_org: str
    owner_org: str
    camera_ids: tuple[str, ...]
    from_us: int
    to_us: int
    operations: frozenset[Operation]
    reason: str
    case_id: str
    lifetime_us: int  # asked for; the approver may shorten it
    asked_at_us: int


@dataclass(frozen=True, slots=True)
class Decision:
    """An approval or refusal, as recorded (`share_approved` / `share_refused`)."""

    request_id: str
    approved: bool
    by_user: str
    by_org: str
    at_us: int
    note: str = ""
    expires_us: int = 0  # of the grant, when approved


@dataclass(frozen=True, slots=True)
class RequestView:
    ask: ShareAsk
    state: RequestState
    decision: Decision | None
    lapses_us: int  # when a pending request lapses


def _bad(msg: str) -> GrantRefused:
    return GrantRefused(Reason.BAD_REQUEST, msg)


def check_ask(
    policy: Policy, requester: User, ask: ShareAsk, cameras: Mapping[str, CameraInfo]
) -> str:
    """The organisation the request goes to (the cameras' owner), or GrantRefused.

    `cameras` holds the catalog's view of every camera the caller found."""
    if not policy.cross_org_requests:
        raise GrantRefused(Reason.ROLE_NOT_ALLOWED, "cross-organisation requests are switched off")
    if requester.org_id not in policy.organisations or requester.role not in REQUESTERS:
        raise GrantRefused(
            Reason.ROLE_NOT_ALLOWED, f"role {requester.role.value} may not ask for footage"
        )
    if not GRANT_ID.fullmatch(ask.request_id):
        raise GrantRefused(Reason.MALFORMED, "request id is not 32 lowercase hex digits")
    if not ask.camera_ids or len(ask.camera_ids) > MAX_REQUEST_CAMERAS:
        raise _bad(f"name 1..{MAX_REQUEST_CAMERAS} cameras")
    if not ask.operations:
        raise _bad("no operations asked for")
    missing = ask.operations - allowed_operations(policy, requester)
    if missing:
        raise GrantRefused(
            Reason.ROLE_NOT_ALLOWED,
            f"role {requester.role.value} may not {sorted(missing)[0].value}",
        )
    if not ask.reason.strip() or len(ask.reason) > MAX_TEXT_CHARS:
        raise _bad(f"a reason is required (at most {MAX_TEXT_CHARS} characters)")
    if len(ask.case_id) > MAX_ID_CHARS or not ask.case_id.isprintable():
        raise _bad("the case id is too long or unprintable")
    if ask.to_us <= ask.from_us:
        raise _bad("footage window is empty ([from, to) needs from < to)")
    if ask.to_us - ask.from_us > policy.case_required_over_us and not ask.case_id:
        raise GrantRefused(Reason.CASE_REQUIRED, "a footage window over 24 h needs a case id")
    if not 0 < ask.lifetime_us <= policy.share_lifetime_us:
        raise _bad(f"lifetime is not within 1..{policy.share_lifetime_us // 1_000_000} s")
    owners: set[str] = set()
    for cam_id in ask.camera_ids:
        cam = cameras.get(cam_id)
        if cam is None:
            raise _bad(f"unknown camera {cam_id[:64]!r}")
        owners.add(cam.owner_org)
    if len(owners) != 1:
        raise _bad("the cameras of one request belong to one organisation")
    owner = owners.pop()
    if owner not in policy.organisations or owner == policy.city_org:
        raise _bad(f"the cameras' owner {owner!r} takes no requests: ask the city platform")
    if owner == requester.org_id:
        raise _bad("these cameras are your own organisation's: no request is needed")
    return owner


def check_approver(policy: Policy, approver: User, ask: ShareAsk) -> None:
    """Only an admin of the organisation owning the cameras decides; GrantRefused otherwise."""
    if approver.role is not Role.ADMIN or approver.org_id != ask.owner_org:
        raise GrantRefused(
            Reason.ROLE_NOT_ALLOWED,
            f"only an admin of {ask.owner_org!r} may decide request {ask.request_id}",
        )


def state_of(
    policy: Policy, ask: ShareAsk, decision: Decision | None, revoked: bool, now_us: int
) -> RequestState:
    if decision is None:
        lapsed = now_us >= ask.asked_at_us + policy.request_ttl_us
        return RequestState.LAPSED if lapsed else RequestState.PENDING
    if not decision.approved:
        return RequestState.REFUSED
    if revoked:
        return RequestState.REVOKED
    return RequestState.EXPIRED if now_us >= decision.expires_us else RequestState.APPROVED


def plan_approved_share(
    policy: Policy,
    approver: User,
    ask: ShareAsk,
    now_us: int,
    *,
    operations: frozenset[Operation] | None = None,
    lifetime_us: int | None = None,
) -> GrantBody:
    """The grant an approval mints (to be signed by the root key): issued by the owner, held
    by the requester in person, the cameras named, never delegable. The approver may narrow
    the operations and shorten the lifetime, never widen them."""
    check_approver(policy, approver, ask)
    ops = ask.operations if operations is None else operations
    if not ops or not ops <= ask.operations:
        raise _bad("approve some of the operations asked for, and no others")
    lifetime = ask.lifetime_us if lifetime_us is None else lifetime_us
    if not 0 < lifetime <= min(ask.lifetime_us, policy.share_lifetime_us):
        raise _bad("the lifetime may only be shortened")
    return _share_body(ask, ops, now_us, now_us + lifetime, now_us)


def owner_shared(policy: Policy, root: GrantBody, camera: CameraInfo) -> bool:
    """Does this root grant carry the owner's consent for `camera` (see the module doc)?"""
    return (
        policy.cross_org_requests
        and not root.parent_id
        and not root.delegable
        and root.issuer_org != policy.city_org
        and root.issuer_org in policy.organisations
        and root.issuer_org == camera.owner_org
        and camera.camera_id in root.camera_ids
        and root.lifetime_us <= policy.share_lifetime_us
    )


# --- the audit entries' details, both ways -----------------------------------------------------


def ask_detail(ask: ShareAsk) -> dict[str, Any]:
    return {
        "owner_org": ask.owner_org,
        "cameras": list(ask.camera_ids),
        "from_us": ask.from_us,
        "to_us": ask.to_us,
        "operations": sorted(op.value for op in ask.operations),
        "reason": ask.reason,
        "lifetime_us": ask.lifetime_us,
    }


def ask_from(
    request_id: str, user: str, org: str, case_id: str, at_us: int, d: Mapping[str, Any]
) -> ShareAsk | None:
    """The request recorded in an audit entry; None when the detail is not one."""
    try:
        return ShareAsk(
            request_id=request_id,
            requester_user=user,
            requester_org=org,
            owner_org=str(d["owner_org"]),
            camera_ids=tuple(str(c) for c in d["cameras"]),
            from_us=int(d["from_us"]),
            to_us=int(d["to_us"]),
            operations=frozenset(Operation(o) for o in d["operations"]),
            reason=str(d.get("reason", "")),
            case_id=case_id,
            lifetime_us=int(d.get("lifetime_us", DAY_US)),
            asked_at_us=at_us,
        )
    except (KeyError, TypeError, ValueError):
        return None


def body_detail(body: GrantBody) -> dict[str, Any]:
    """Everything of an approved share's body but its fixed parts (see `body_from`)."""
    return {
        "operations": sorted(op.value for op in body.operations),
        "not_before_us": body.not_before_us,
        "expires_us": body.expires_us,
        "issued_at_us": body.issued_at_us,
    }


def body_from(ask: ShareAsk, d: Mapping[str, Any]) -> GrantBody:
    """The exact body an approval minted, rebuilt from the request and the approval's detail,
    so its holder can collect a token for it later (the controller keeps no tokens)."""
    ops = frozenset(Operation(o) for o in d["operations"])
    return _share_body(
        ask, ops, int(d["not_before_us"]), int(d["expires_us"]), int(d["issued_at_us"])
    )


def _share_body(
    ask: ShareAsk,
    ops: frozenset[Operation],
    not_before_us: int,
    expires_us: int,
    issued_at_us: int,
) -> GrantBody:
    """The grant an approval mints: the owner issues it to the requester in person, for the
    cameras and window asked for (one place, so an approval and its later collection agree)."""
    body = GrantBody(
        grant_id=ask.request_id,
        parent_id="",
        issuer_org=ask.owner_org,
        holder_org=ask.requester_org,
        holder_user=ask.requester_user,
        holder_public_key=b"",
        camera_ids=frozenset(ask.camera_ids),
        area_prefixes=(),
        resource_classes=frozenset(),
        footage_from_us=ask.from_us,
        footage_to_us=ask.to_us,
        operations=ops,
        not_before_us=not_before_us,
        expires_us=expires_us,
        purpose=f"request {ask.request_id}: {ask.reason}"[:MAX_TEXT_CHARS],
        case_id=ask.case_id,
        watermark_id=f"{ask.requester_org}/{ask.requester_user}"[:MAX_ID_CHARS],
        download_limit=1 if Operation.DOWNLOAD in ops else 0,
        issued_at_us=issued_at_us,
    )
    return check_body(body)


def fold(
    policy: Policy,
    asks: Iterable[ShareAsk],
    decisions: Iterable[Decision],
    revoked: frozenset[str] | set[str],
    now_us: int,
) -> list[RequestView]:
    """Every request with its state; the first decision recorded for a request is the one
    that counts (a later one, from a race between two admins, is ignored)."""
    first: dict[str, Decision] = {}
    for d in sorted(decisions, key=lambda d: d.at_us):
        first.setdefault(d.request_id, d)
    out = []
    for ask in asks:
        decision = first.get(ask.request_id)
        out.append(
            RequestView(
                ask,
                state_of(policy, ask, decision, ask.request_id in revoked, now_us),
                decision,
                ask.asked_at_us + policy.request_ttl_us,
            )
        )
    return out
