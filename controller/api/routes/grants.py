"""Grants over HTTP: mint (for the caller's organisation, within its entitlement), register a
delegation made offline, renew a live grant, revoke, and the signed revocation list.

Every decision is the grant service's (`controller.grants.service`), which audits successes
and refusals alike; this module only translates JSON to `GrantRequest` and back.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controller.api.common import info_for, refuse
from controller.api.deps import DepsDep, UserDep
from controller.api.schemas import GrantCreate, GrantOut, RevokeOut, RevokeRequest, TokenRequest
from controller.grants.chain import verify_chain
from controller.grants.codec import Chain, decode_token
from controller.grants.errors import GrantRefused, Reason
from controller.grants.mint import GrantRequest
from controller.grants.model import CameraInfo
from controller.grants.policy import Role, User

router = APIRouter(prefix="/api/v1", tags=["grants"])


def grant_out(token: str, chain: Chain) -> GrantOut:
    leaf = chain.leaf
    return GrantOut(
        token=token,
        grant_id=leaf.grant_id,
        chain=list(chain.grant_ids),
        issuer_org=leaf.issuer_org,
        holder_org=leaf.holder_org,
        holder_user=leaf.holder_user,
        operations=sorted(op.value for op in leaf.operations),
        cameras=sorted(leaf.camera_ids),
        areas=list(leaf.area_prefixes),
        from_us=leaf.footage_from_us,
        to_us=leaf.footage_to_us,
        not_before_us=leaf.not_before_us,
        expires_us=min(link.body.expires_us for link in chain.links),
        delegable=leaf.delegable,
        download_limit=leaf.download_limit,
        case_id=leaf.case_id,
        watermark_id=leaf.watermark_id,
    )


def _public_key(deps: DepsDep, user: User, text: str) -> bytes:
    if not text:
        return b""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        refuse(deps, "grant_mint", user, "bad_request", "holder_public_key must be 64 hex digits")
    return raw


@router.post("/grants", response_model=GrantOut, status_code=201)
def mint(body: GrantCreate, user: UserDep, deps: DepsDep) -> GrantOut:
    """Mint a root grant. Holder: the caller's organisation (a city admin may name another),
    and by default the caller themself, so a grant minted to watch is useless to colleagues."""
    holder_org = body.holder_org or user.org_id
    default_user = user.user_id if holder_org == user.org_id else ""
    request = GrantRequest(
        holder_org=holder_org,
        holder_user=default_user if body.holder_user is None else body.holder_user,
        holder_public_key=_public_key(deps, user, body.holder_public_key),
        operations=frozenset(body.operations),
        footage_from_us=body.from_us,
        footage_to_us=body.to_us,
        purpose=body.purpose,
        camera_ids=frozenset(body.cameras),
        area_prefixes=tuple(body.areas),
        resource_classes=frozenset(body.classes),
        case_id=body.case_id,
        watermark_id=body.watermark_id or f"{user.org_id}/{user.user_id}",
        lifetime_us=None if body.lifetime_s is None else body.lifetime_s * 1_000_000,
        not_before_us=body.not_before_us,
        download_limit=body.downloads,
    )
    cameras: dict[str, CameraInfo] = {}
    for cam_id in body.cameras:
        row = deps.catalog.camera(cam_id) if 0 < len(cam_id) <= 128 else None
        if row is not None:
            try:
                cameras[cam_id] = info_for(deps, row)
            except ValueError:
                continue  # reported as an unknown camera by the mint decision
    token = deps.grants.mint(user, request, cameras)
    return grant_out(token, decode_token(token))


@router.post("/grants/delegate", response_model=GrantOut, status_code=201)
def register_delegation(body: TokenRequest, user: UserDep, deps: DepsDep) -> GrantOut:
    """Register a delegation made offline (`vigil-controller grant delegate`): the whole chain
    is verified now (signatures, narrowing, time, revocation) and each new link is audited as
    `grant_delegated`, before anyone uses it. Only an admin of the delegating organisation
    registers it."""
    action = "grant_delegate"
    grants = deps.grants
    try:
        chain = decode_token(body.token)
    except GrantRefused as exc:
        grants.refuse(exc, action, user)
    now = deps.clock.now_us()
    try:
        if len(chain.links) < 2:
            raise GrantRefused(Reason.BAD_REQUEST, "a root grant is not a delegation")
        verify_chain(chain, grants.anchors, now, grants.revoked())
        if user.role is not Role.ADMIN:
            raise GrantRefused(Reason.ROLE_NOT_ALLOWED, "only an admin registers delegations")
        if chain.leaf.issuer_org != user.org_id:
            raise GrantRefused(
                Reason.WRONG_HOLDER,
                f"grant {chain.leaf.grant_id} was delegated by {chain.leaf.issuer_org!r}, "
                f"not by {user.org_id!r}",
            )
    except GrantRefused as exc:
        grants.refuse(exc, action, user, grant_id=chain.leaf.grant_id, case_id=chain.leaf.case_id)
    by_id = {link.body.grant_id: link.body for link in chain.links}
    for gid in grants.store.record_seen(chain, now):
        child = by_id[gid]
        if child.parent_id:
            grants.record(
                "grant_delegated",
                user,
                grant_id=gid,
                case_id=child.case_id,
                detail={
                    "parent": child.parent_id,
                    "issuer_org": child.issuer_org,
                    "holder_org": child.holder_org,
                    "holder_user": child.holder_user,
                    "expires_us": child.expires_us,
                    "registered_by": "api",
                },
            )
    return grant_out(body.token, chain)


@router.post("/grants/renew", response_model=GrantOut)
def renew(body: TokenRequest, user: UserDep, deps: DepsDep) -> GrantOut:
    """Another live lifetime for a live-only grant minted here (same id: revoking it still
    stops every renewal)."""
    token = deps.grants.renew(body.token, user)
    return grant_out(token, decode_token(token))


@router.post("/grants/{grant_id}/revoke", response_model=RevokeOut)
def revoke(grant_id: str, body: RevokeRequest, user: UserDep, deps: DepsDep) -> RevokeOut:
    seq = deps.grants.revoke(grant_id, user, body.reason)
    return RevokeOut(grant_id=grant_id, sequence=seq)


@router.get(
    "/revocations",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def revocations(deps: DepsDep) -> Response:
    """The signed revocation list (valid 60 s). Public: it is meant to be fetched by every
    verifier, county and replica, and says nothing but which grant ids are void."""
    return Response(
        deps.grants.revocation_list(),
        media_type="application/octet-stream",
        headers={"Cache-Control": "max-age=10"},
    )
