"""Turning a request into a grant body: defaults, limits and entitlement (pure; no keys here).

`plan_root_grant` is what the controller does for a user (or, for a city admin, for another
organisation's delegation key); `plan_child_grant` what a holder does when delegating, offline
if need be; `plan_renewal` extends a live grant by another live lifetime under the same id, so
revoking the id still stops every renewal of it. Signing is `codec.sign_grant`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import (
    MINUTE_US,
    CameraInfo,
    GrantBody,
    Operation,
    check_body,
)
from controller.grants.narrowing import check_narrower
from controller.grants.policy import (
    Policy,
    Role,
    User,
    allowed_operations,
    area_entitled,
    default_lifetime_us,
    entitled,
    entitled_classes,
)

MAX_DOWNLOAD_LIMIT = 100
MAX_START_DELAY_US = 30 * 24 * 60 * MINUTE_US  # a grant may start up to 30 days ahead
PAST_TOLERANCE_US = MINUTE_US


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What someone asks for. Unset (None) fields take the policy's defaults."""

    holder_org: str
    operations: frozenset[Operation]
    footage_from_us: int
    footage_to_us: int
    purpose: str
    camera_ids: frozenset[str] = frozenset()
    area_prefixes: tuple[str, ...] = ()
    resource_classes: frozenset[str] = frozenset()
    holder_user: str = ""
    holder_public_key: bytes = b""
    case_id: str = ""
    watermark_id: str = ""
    lifetime_us: int | None = None
    not_before_us: int | None = None
    download_limit: int | None = None


def _bad(msg: str) -> GrantRefused:
    return GrantRefused(Reason.BAD_REQUEST, msg)


def _not_before(req: GrantRequest, now_us: int) -> int:
    nb = now_us if req.not_before_us is None else req.not_before_us
    if nb < now_us - PAST_TOLERANCE_US:
        raise _bad("not-before lies in the past")
    if nb > now_us + MAX_START_DELAY_US:
        raise _bad("not-before lies more than 30 days ahead")
    return nb


def _download_limit(req: GrantRequest, default: int) -> int:
    if Operation.DOWNLOAD not in req.operations:
        if req.download_limit:
            raise _bad("a download limit without the download operation")
        return 0
    limit = default if req.download_limit is None else req.download_limit
    if not 0 <= limit <= MAX_DOWNLOAD_LIMIT:
        raise _bad(f"download limit {limit} is not 0..{MAX_DOWNLOAD_LIMIT}")
    return limit


def _common_checks(req: GrantRequest) -> None:
    if not req.operations:
        raise _bad("no operations asked for")
    if not req.purpose.strip():
        raise _bad("a purpose is required")
    if not req.camera_ids and not req.area_prefixes:
        raise _bad("scope is empty: name cameras and/or areas")
    if req.footage_to_us <= req.footage_from_us:
        raise _bad("footage window is empty ([from, to) needs from < to)")


def _resolve_classes(policy: Policy, req: GrantRequest) -> frozenset[str]:
    """Classes of the grant: as asked, or (when not asked) narrowed to what every requested
    area is entitled to, so 公安 asking for the whole city gets classes II and III."""
    if req.resource_classes:
        return req.resource_classes
    restricted: set[str] = set()
    for prefix in req.area_prefixes:
        allowed = entitled_classes(policy, req.holder_org, prefix)
        if allowed is None:
            raise GrantRefused(
                Reason.NOT_ENTITLED, f"{req.holder_org!r} is not entitled to area {prefix!r}"
            )
        restricted |= allowed
    return frozenset(restricted)


def plan_root_grant(
    policy: Policy,
    requester: User,
    req: GrantRequest,
    cameras: Mapping[str, CameraInfo],
    now_us: int,
    grant_id: str,
) -> GrantBody:
    """A root grant (to be signed by the city root key) for `req`, or GrantRefused.

    `cameras` must hold every camera id in the request (the caller looks them up)."""
    _common_checks(req)
    if requester.org_id not in policy.organisations:
        raise GrantRefused(Reason.ROLE_NOT_ALLOWED, f"unknown organisation {requester.org_id!r}")
    if req.holder_org not in policy.organisations:
        raise _bad(f"unknown holder organisation {req.holder_org!r}")
    city_admin = requester.org_id == policy.city_org and requester.role is Role.ADMIN
    if req.holder_org != requester.org_id and not city_admin:
        raise GrantRefused(
            Reason.ROLE_NOT_ALLOWED,
            f"{requester.user_id!r} may not mint grants for organisation {req.holder_org!r}",
        )
    missing_ops = req.operations - allowed_operations(policy, requester)
    if missing_ops:
        raise GrantRefused(
            Reason.ROLE_NOT_ALLOWED,
            f"role {requester.role.value} may not {sorted(missing_ops)[0].value}",
        )
    if req.holder_public_key and requester.role is not Role.ADMIN:
        raise GrantRefused(Reason.ROLE_NOT_ALLOWED, "only an admin may mint a delegable grant")
    for cam_id in sorted(req.camera_ids):
        cam = cameras.get(cam_id)
        if cam is None:
            raise _bad(f"unknown camera {cam_id!r}")
        if not entitled(policy, req.holder_org, cam):
            raise GrantRefused(
                Reason.NOT_ENTITLED,
                f"camera {cam_id!r} belongs to {cam.owner_org!r}; "
                f"{req.holder_org!r} is not entitled to it",
            )
    classes = _resolve_classes(policy, req)
    for prefix in req.area_prefixes:
        if not area_entitled(policy, req.holder_org, prefix, classes):
            raise GrantRefused(
                Reason.NOT_ENTITLED, f"{req.holder_org!r} is not entitled to area {prefix!r}"
            )
    if req.footage_to_us - req.footage_from_us > policy.case_required_over_us and not req.case_id:
        raise GrantRefused(Reason.CASE_REQUIRED, "a footage window over 24 h needs a case id")
    delegable = bool(req.holder_public_key)
    longest = (
        policy.delegation_lifetime_us if delegable else default_lifetime_us(policy, req.operations)
    )
    lifetime = longest if req.lifetime_us is None else req.lifetime_us
    if not 0 < lifetime <= longest:
        raise _bad(f"lifetime {lifetime / 1e6:.0f} s is not within 1..{longest / 1e6:.0f} s")
    not_before = _not_before(req, now_us)
    try:
        return check_body(
            GrantBody(
                grant_id=grant_id,
                parent_id="",
                issuer_org=policy.city_org,
                holder_org=req.holder_org,
                holder_user=req.holder_user,
                holder_public_key=req.holder_public_key,
                camera_ids=req.camera_ids,
                area_prefixes=req.area_prefixes,
                resource_classes=classes,
                footage_from_us=req.footage_from_us,
                footage_to_us=req.footage_to_us,
                operations=req.operations,
                not_before_us=not_before,
                expires_us=not_before + lifetime,
                purpose=req.purpose,
                case_id=req.case_id,
                watermark_id=req.watermark_id,
                download_limit=_download_limit(req, 0 if delegable else 1),
                issued_at_us=now_us,
            )
        )
    except GrantRefused as exc:
        if exc.reason is Reason.MALFORMED:
            raise _bad(exc.message) from None
        raise


def plan_child_grant(
    parent: GrantBody, req: GrantRequest, now_us: int, grant_id: str, policy: Policy
) -> GrantBody:
    """A child of `parent` (to be signed with the parent's holder key), narrower in every
    dimension; GrantRefused(WIDENED) when the request asks for more than the parent has."""
    _common_checks(req)
    if not parent.delegable:
        raise GrantRefused(
            Reason.NOT_DELEGABLE, f"grant {parent.grant_id} has no holder key: cannot delegate"
        )
    if now_us >= parent.expires_us:
        raise GrantRefused(Reason.EXPIRED, f"parent grant {parent.grant_id} has expired")
    not_before = max(_not_before(req, now_us), parent.not_before_us)
    if req.lifetime_us is None:
        longest = (
            policy.delegation_lifetime_us
            if req.holder_public_key
            else default_lifetime_us(policy, req.operations)
        )
        expires = min(not_before + longest, parent.expires_us)
    else:
        if req.lifetime_us <= 0:
            raise _bad("lifetime must be positive")
        expires = not_before + req.lifetime_us
    body = GrantBody(
        grant_id=grant_id,
        parent_id=parent.grant_id,
        issuer_org=parent.holder_org,
        holder_org=req.holder_org,
        holder_user=req.holder_user,
        holder_public_key=req.holder_public_key,
        camera_ids=req.camera_ids,
        area_prefixes=req.area_prefixes,
        resource_classes=req.resource_classes or parent.resource_classes,
        footage_from_us=req.footage_from_us,
        footage_to_us=req.footage_to_us,
        operations=req.operations,
        not_before_us=not_before,
        expires_us=expires,
        purpose=req.purpose,
        case_id=req.case_id or parent.case_id,
        watermark_id=req.watermark_id,
        download_limit=_download_limit(req, 0 if req.holder_public_key else 1),
        issued_at_us=now_us,
    )
    check_body(body)
    check_narrower(parent, body)
    return body


def plan_renewal(
    current: GrantBody, parent: GrantBody | None, policy: Policy, now_us: int
) -> GrantBody:
    """The same live grant (same id) valid for another live lifetime from now.

    Only live-only grants renew, only while still valid, never beyond the parent's expiry.
    The caller has already checked that the grant (and its chain) is not revoked."""
    if current.operations != frozenset({Operation.LIVE}):
        raise _bad(f"grant {current.grant_id} is not a live-only grant: it cannot be renewed")
    if now_us >= current.expires_us:
        raise GrantRefused(
            Reason.EXPIRED, f"grant {current.grant_id} has expired: ask for a new one"
        )
    expires = now_us + policy.lifetime_us[Operation.LIVE]
    if parent is not None:
        expires = min(expires, parent.expires_us)
    if expires <= now_us:
        raise GrantRefused(Reason.EXPIRED, f"the parent of {current.grant_id} has expired")
    return replace(
        current,
        not_before_us=max(current.not_before_us, now_us - PAST_TOLERANCE_US),
        expires_us=expires,
        issued_at_us=now_us,
        renewal=current.renewal + 1,
    )
