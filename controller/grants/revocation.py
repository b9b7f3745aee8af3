"""The signed, sequence-numbered revocation list, and how a verifier accepts one.

The controller signs a fresh list (root key, domain-separated) whenever it is asked, valid for
`LIST_VALIDITY_US`; verifiers fetch it at least every 30 s and refuse every grant once their
newest list is past `next_update_us` (fail closed), so a revocation is in force everywhere
within 60 s. The sequence grows with each revocation and a verifier never accepts a lower one:
replaying an old list (from before the revocation) cannot un-revoke a grant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import DecodeError

from controller.grants.chain import SignatureCache, VerifiedChain, verify_chain
from controller.grants.codec import Chain, key_id, raw_public_key
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import GRANT_ID, US_PER_S
from protos.vigil.v1 import grants_pb2

REVOCATION_DOMAIN = b"vigil.v1.RevocationList\x00"
LIST_VALIDITY_US = 60 * US_PER_S
MAX_LIST_BYTES = 8 * 1024 * 1024
# Live revocations listed at most: ~34 bytes each, so the signed list stays far below what a
# verifier accepts (MAX_LIST_BYTES); past it a sub-platform would fail closed.
MAX_LISTED_REVOCATIONS = 100_000


@dataclass(frozen=True, slots=True)
class Lineage:
    """What the controller knows of a grant and its ancestors (the grant first), from the
    grants it minted or registered: (issuer_org, holder_org) per link."""

    grant_id: str
    links: tuple[tuple[str, str], ...]


def check_revoker(
    lineage: Lineage | None,
    org_id: str,
    is_admin: bool,
    city_org: str,
    listed: int,
    already_revoked: bool = False,
    max_listed: int = MAX_LISTED_REVOCATIONS,
) -> None:
    """May an admin of `org_id` revoke this grant? GrantRefused saying why not.

    Allowed: the city's admins; an admin of the grant's issuing organisation; an admin of
    an organisation holding the grant or any grant above it in the delegation chain (each
    of them could have stopped passing it on). Unknown ids are refused (they would only grow
    the public list), and a full list refuses new entries (verifiers would fail closed).
    """
    if not is_admin:
        raise GrantRefused(Reason.ROLE_NOT_ALLOWED, "only an admin may revoke grants")
    if lineage is None or not lineage.links:
        raise GrantRefused(
            Reason.UNKNOWN_GRANT, "no grant with this id was issued or registered here"
        )
    issuer, _holder = lineage.links[0]
    allowed = {city_org, issuer} | {holder for _issuer, holder in lineage.links}
    if org_id not in allowed:
        raise GrantRefused(
            Reason.WRONG_HOLDER,
            f"grant {lineage.grant_id} is neither issued by nor delegated through "
            f"organisation {org_id!r}",
        )
    if not already_revoked and listed >= max_listed:
        raise GrantRefused(
            Reason.LIST_FULL,
            f"the revocation list holds {listed} live entries, its bound: ask the city",
        )


@dataclass(frozen=True, slots=True)
class RevocationView:
    """What a verifier knows: the revoked ids as of `issued_at_us`, usable until
    `next_update_us`."""

    sequence: int
    issued_at_us: int
    next_update_us: int
    revoked: frozenset[str]

    def fresh(self, now_us: int) -> bool:
        return self.issued_at_us <= now_us + LIST_VALIDITY_US and now_us < self.next_update_us


def require_fresh(view: RevocationView | None, now_us: int) -> RevocationView:
    """The view if it may still be relied on, else GrantRefused(REVOCATION_STALE)."""
    if view is None:
        raise GrantRefused(Reason.REVOCATION_STALE, "no revocation list: refusing to guess")
    if not view.fresh(now_us):
        age_s = (now_us - view.issued_at_us) / US_PER_S
        raise GrantRefused(
            Reason.REVOCATION_STALE,
            f"revocation list {view.sequence} is {age_s:.0f} s old and past its next update",
        )
    return view


def make_view(
    sequence: int, revoked: Iterable[str], now_us: int, validity_us: int = LIST_VALIDITY_US
) -> RevocationView:
    return RevocationView(sequence, now_us, now_us + validity_us, frozenset(revoked))


def sign_revocation_list(view: RevocationView, private: Ed25519PrivateKey) -> bytes:
    """A serialized SignedRevocationList (ids sorted, so equal lists are equal bytes)."""
    body = grants_pb2.RevocationList(
        sequence=view.sequence,
        issued_at_us=view.issued_at_us,
        next_update_us=view.next_update_us,
        revoked_ids=sorted(view.revoked),
    ).SerializeToString()
    signed = grants_pb2.SignedRevocationList(
        list=body,
        signature=private.sign(REVOCATION_DOMAIN + body),
        key_id=key_id(raw_public_key(private)),
    )
    return signed.SerializeToString()


def accept_revocation_list(
    data: bytes,
    anchors: Mapping[str, Ed25519PublicKey],
    current: RevocationView | None,
    now_us: int,
) -> RevocationView:
    """Verify a published list and return the view to use from now on.

    Refused (GrantRefused, `current` stays in force): oversize or garbage bytes, an unknown key,
    a bad signature, a list going back in sequence (or in time within one sequence), a list
    already past its next update, malformed ids."""
    if len(data) > MAX_LIST_BYTES:
        raise GrantRefused(Reason.OVERSIZE, f"revocation list of {len(data)} bytes")
    try:
        signed = grants_pb2.SignedRevocationList.FromString(data)
        body = grants_pb2.RevocationList.FromString(signed.list)
    except DecodeError:
        raise GrantRefused(Reason.MALFORMED, "revocation list is not a valid protobuf") from None
    key = anchors.get(signed.key_id)
    if key is None:
        raise GrantRefused(
            Reason.UNKNOWN_KEY, f"revocation list signed by unknown key {signed.key_id[:16]!r}"
        )
    try:
        key.verify(bytes(signed.signature), REVOCATION_DOMAIN + bytes(signed.list))
    except InvalidSignature:
        raise GrantRefused(Reason.BAD_SIGNATURE, "revocation list signature is invalid") from None
    if current is not None and (body.sequence, body.issued_at_us) < (
        current.sequence,
        current.issued_at_us,
    ):
        raise GrantRefused(
            Reason.MALFORMED,
            f"revocation list {body.sequence} is older than the one in force ({current.sequence})",
        )
    for gid in body.revoked_ids:
        if not GRANT_ID.fullmatch(gid):
            raise GrantRefused(Reason.MALFORMED, "revocation list holds a malformed grant id")
    view = RevocationView(
        body.sequence, body.issued_at_us, body.next_update_us, frozenset(body.revoked_ids)
    )
    if not view.fresh(now_us):
        raise GrantRefused(Reason.REVOCATION_STALE, "revocation list is already past its update")
    return view


def verify_with_list(
    chain: Chain,
    anchors: Mapping[str, Ed25519PublicKey],
    view: RevocationView | None,
    now_us: int,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """What a sub-platform does on its own: refuse unless its revocation list is fresh, then
    verify the chain against it. GrantRefused on any problem."""
    fresh = require_fresh(view, now_us)
    return verify_chain(chain, anchors, now_us, fresh.revoked, cache=cache)
