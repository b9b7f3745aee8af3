"""Verifying a delegation chain with nothing but public keys (pure; the clock is a number).

The root link must be signed by a trusted root key (the city's); every later link by the key
its parent names as holder key, refer to its parent by id, and be narrower than it in every
dimension. Then time (every link valid now) and revocation (no link revoked). Signatures are
checked first, so a forged token learns nothing about the grants it imitates.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controller.grants.codec import GRANT_DOMAIN, Chain, key_id, load_public_key
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import US_PER_S, GrantBody
from controller.grants.narrowing import check_narrower

CLOCK_SKEW_US = 30 * US_PER_S  # a grant minted on another machine may look a little early


class SignatureCache:
    """Signatures already verified, so the links every token shares (city -> county ->
    unit) are checked once, not on every request. Keyed by the signature plus the SHA-256
    of the raw public key and the signed bytes: only the identical (key, bytes, signature)
    triple hits. Bounded; the oldest entries go first. Only successes are remembered, and
    time, narrowing and revocation are always re-checked."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(public_raw: bytes, raw: bytes, signature: bytes) -> bytes:
        return signature + hashlib.sha256(public_raw + raw).digest()

    def __contains__(self, key: bytes) -> bool:
        return key in self._seen

    def add(self, key: bytes) -> None:
        with self._lock:
            self._seen[key] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A chain whose signatures, links, narrowing, time and revocation all checked out."""

    chain: Chain
    checked_at_us: int

    @property
    def leaf(self) -> GrantBody:
        return self.chain.leaf

    @property
    def root(self) -> GrantBody:
        return self.chain.root

    @property
    def grant_ids(self) -> tuple[str, ...]:
        return self.chain.grant_ids


def verify_signatures(
    chain: Chain, anchors: Mapping[str, Ed25519PublicKey], cache: SignatureCache | None = None
) -> None:
    """Every link signed by the right key and linked to its parent; GrantRefused otherwise."""
    seen: set[str] = set()
    parent: GrantBody | None = None
    for depth, link in enumerate(chain.links):
        body = link.body
        if parent is None:
            if body.parent_id:
                raise GrantRefused(
                    Reason.BROKEN_CHAIN, f"first grant {body.grant_id} names a parent: not a root"
                )
            key = anchors.get(link.key_id)
            if key is None:
                raise GrantRefused(
                    Reason.UNKNOWN_KEY,
                    f"root grant {body.grant_id} is signed by key {link.key_id}, "
                    "not by a trusted root",
                )
        else:
            if not parent.delegable:
                raise GrantRefused(
                    Reason.NOT_DELEGABLE,
                    f"grant {parent.grant_id} has no holder key: it cannot have children",
                )
            if body.parent_id != parent.grant_id:
                raise GrantRefused(
                    Reason.BROKEN_CHAIN,
                    f"grant {body.grant_id} names parent {body.parent_id or '(none)'}, "
                    f"but follows {parent.grant_id}",
                )
            if link.key_id != key_id(parent.holder_public_key):
                raise GrantRefused(
                    Reason.BAD_SIGNATURE,
                    f"grant {body.grant_id} is not signed by the holder key of {parent.grant_id}",
                )
            if body.issuer_org != parent.holder_org:
                raise GrantRefused(
                    Reason.BROKEN_CHAIN,
                    f"grant {body.grant_id} is issued by {body.issuer_org!r}, "
                    f"but its parent is held by {parent.holder_org!r}",
                )
            key = load_public_key(parent.holder_public_key)
        if body.grant_id in seen:
            raise GrantRefused(Reason.BROKEN_CHAIN, f"grant {body.grant_id} appears twice")
        seen.add(body.grant_id)
        memo = b""
        if cache is not None:
            public_raw = key.public_bytes_raw() if parent is None else parent.holder_public_key
            memo = SignatureCache.key(public_raw, link.raw, link.signature)
        if not (cache is not None and memo in cache):
            try:
                key.verify(link.signature, GRANT_DOMAIN + link.raw)
            except InvalidSignature:
                raise GrantRefused(
                    Reason.BAD_SIGNATURE,
                    f"signature of grant {body.grant_id} (link {depth + 1}) does not verify",
                ) from None
            if cache is not None:
                cache.add(memo)
        parent = body


def check_time(body: GrantBody, now_us: int, skew_us: int = CLOCK_SKEW_US) -> None:
    if now_us + skew_us < body.not_before_us:
        wait_s = (body.not_before_us - now_us) / US_PER_S
        raise GrantRefused(
            Reason.NOT_YET_VALID, f"grant {body.grant_id} is not valid for another {wait_s:.0f} s"
        )
    if now_us >= body.expires_us:
        ago_s = (now_us - body.expires_us) / US_PER_S
        raise GrantRefused(Reason.EXPIRED, f"grant {body.grant_id} expired {ago_s:.0f} s ago")


def check_revoked(chain: Chain, revoked: Collection[str]) -> None:
    if not revoked:
        return
    leaf_id = chain.leaf.grant_id
    for gid in chain.grant_ids:
        if gid in revoked:
            if gid == leaf_id:
                raise GrantRefused(Reason.REVOKED, f"grant {gid} has been revoked")
            raise GrantRefused(
                Reason.REVOKED, f"ancestor {gid} of grant {leaf_id} has been revoked"
            )


def verify_chain(
    chain: Chain,
    anchors: Mapping[str, Ed25519PublicKey],
    now_us: int,
    revoked: Collection[str],
    skew_us: int = CLOCK_SKEW_US,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """Signatures, links, narrowing, time, revocation: all of them, or GrantRefused.
    `cache` (optional) remembers verified signatures across calls."""
    verify_signatures(chain, anchors, cache)
    links = chain.links
    for parent, child in zip(links, links[1:], strict=False):
        check_narrower(parent.body, child.body)
    for link in links:
        check_time(link.body, now_us, skew_us)
    check_revoked(chain, revoked)
    return VerifiedChain(chain, now_us)
