"""The one access decision: may this chain, presented by this person, do this to this camera's
footage in this time range, now? Pure: keys, policy, revocations and the time are arguments.

Order of checks (the first failure is the reason given): the chain itself (signatures, links,
narrowing, validity, revocation), who presents it, the operation, the camera against every
link's scope, the root holder's entitlement under the *current* policy (or the owner's consent:
an approved cross-organisation request, `policy_sharing.owner_shared`), then the footage time.
On success the answer carries the footage window actually granted (the request ∩ the grant).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controller.grants.chain import CLOCK_SKEW_US, SignatureCache, VerifiedChain, verify_chain
from controller.grants.codec import Chain
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import CameraInfo, Operation, in_scope
from controller.grants.policy import Policy, entitled
from controller.grants.policy_sharing import owner_shared


@dataclass(frozen=True, slots=True)
class AccessRequest:
    operation: Operation
    camera: CameraInfo
    from_us: int  # recorded time asked for, [from, to); for live: ignored (now is used)
    to_us: int
    presenter_org: str  # the authenticated caller's organisation ("" for anonymous bearer)
    presenter_user: str = ""


@dataclass(frozen=True, slots=True)
class Access:
    """Permission granted: the verified chain and the footage window that may be served."""

    verified: VerifiedChain
    from_us: int
    to_us: int

    @property
    def grant_id(self) -> str:
        return self.verified.leaf.grant_id

    @property
    def expires_us(self) -> int:
        return min(link.body.expires_us for link in self.verified.chain.links)


def check_presenter(chain: Chain, org: str, user: str) -> None:
    leaf = chain.leaf
    if leaf.holder_org != org:
        raise GrantRefused(
            Reason.WRONG_HOLDER,
            f"grant {leaf.grant_id} is held by {leaf.holder_org!r}, "
            f"presented by {org or 'nobody'!r}",
        )
    if leaf.holder_user and leaf.holder_user != user:
        raise GrantRefused(
            Reason.WRONG_HOLDER,
            f"grant {leaf.grant_id} is for user {leaf.holder_user!r}, not {user or 'anonymous'!r}",
        )


def authorize(
    chain: Chain,
    anchors: Mapping[str, Ed25519PublicKey],
    policy: Policy,
    request: AccessRequest,
    revoked: Collection[str],
    now_us: int,
    skew_us: int = CLOCK_SKEW_US,
    cache: SignatureCache | None = None,
) -> Access:
    """An Access for `request`, or GrantRefused saying exactly why not."""
    verified = verify_chain(chain, anchors, now_us, revoked, skew_us, cache)
    check_presenter(chain, request.presenter_org, request.presenter_user)
    leaf = chain.leaf
    if request.operation not in leaf.operations:
        raise GrantRefused(
            Reason.OPERATION_NOT_GRANTED,
            f"grant {leaf.grant_id} does not allow {request.operation.value}",
        )
    cam = request.camera
    for link in chain.links:
        if not in_scope(link.body, cam):
            which = "grant" if link.body is leaf else "ancestor grant"
            raise GrantRefused(
                Reason.CAMERA_OUT_OF_SCOPE,
                f"camera {cam.camera_id!r} is outside the scope of {which} {link.body.grant_id}",
            )
    root_org = chain.root.holder_org
    if not entitled(policy, root_org, cam) and not owner_shared(policy, chain.root, cam):
        raise GrantRefused(
            Reason.NOT_ENTITLED,
            f"camera {cam.camera_id!r} belongs to {cam.owner_org!r}; "
            f"{root_org!r} is not entitled to it",
        )
    if request.operation is Operation.LIVE:
        start, end = now_us, now_us + 1
    else:
        start, end = request.from_us, request.to_us
        if end <= start:
            raise GrantRefused(Reason.BAD_REQUEST, "requested time range is empty")
    lo = max(start, leaf.footage_from_us)
    hi = min(end, leaf.footage_to_us)
    if hi <= lo:
        what = "live footage (now)" if request.operation is Operation.LIVE else "requested footage"
        raise GrantRefused(
            Reason.OUTSIDE_WINDOW, f"{what} lies outside the window of grant {leaf.grant_id}"
        )
    return Access(verified, lo, hi)
