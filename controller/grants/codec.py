"""Grants on the wire: protobuf bodies, Ed25519 envelopes, and the bearer token.

The signature covers a domain prefix plus the exact serialized `Grant` bytes carried in the
envelope; verifiers parse those same bytes, so there is no canonicalisation to get wrong.
A token is the base64url (unpadded) `GrantChain`, root first. Decoding is defensive: size
limits before parsing, unknown protobuf fields refused (a field this version does not know
could be a restriction it would silently ignore), every body validated by `check_body`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import GrantBody, Operation, check_body

# Defined below grants and audit (controller/keyid.py); still named from here too.
from controller.keyid import KEY_ID_HEX as KEY_ID_HEX
from controller.keyid import key_id as key_id
from controller.keyid import raw_public_key as raw_public_key
from protos.vigil.v1 import grants_pb2

GRANT_VERSION = 1
GRANT_DOMAIN = b"vigil.v1.Grant\x00"
MAX_TOKEN_CHARS = 64 * 1024
MAX_LINKS = 8
MAX_GRANT_BYTES = 32 * 1024

_OP_TO_PB = {
    Operation.LIVE: grants_pb2.GRANT_OPERATION_LIVE,
    Operation.PLAYBACK: grants_pb2.GRANT_OPERATION_PLAYBACK,
    Operation.DOWNLOAD: grants_pb2.GRANT_OPERATION_DOWNLOAD,
}
_PB_TO_OP = {v: k for k, v in _OP_TO_PB.items()}


@dataclass(frozen=True, slots=True)
class Link:
    """One signed grant of a chain: the body, the exact bytes signed, and the signature."""

    body: GrantBody
    raw: bytes
    signature: bytes
    key_id: str


@dataclass(frozen=True, slots=True)
class Chain:
    """Root grant first, the presenter's own grant last."""

    links: tuple[Link, ...]

    @property
    def leaf(self) -> GrantBody:
        return self.links[-1].body

    @property
    def root(self) -> GrantBody:
        return self.links[0].body

    @property
    def grant_ids(self) -> tuple[str, ...]:
        return tuple(link.body.grant_id for link in self.links)


def encode_body(body: GrantBody) -> bytes:
    msg = grants_pb2.Grant(
        version=GRANT_VERSION,
        grant_id=body.grant_id,
        parent_id=body.parent_id,
        issuer_org=body.issuer_org,
        holder_org=body.holder_org,
        holder_user=body.holder_user,
        holder_public_key=body.holder_public_key,
        camera_ids=sorted(body.camera_ids),
        area_prefixes=list(body.area_prefixes),
        resource_classes=sorted(body.resource_classes),
        footage_from_us=body.footage_from_us,
        footage_to_us=body.footage_to_us,
        operations=sorted(_OP_TO_PB[op] for op in body.operations),
        not_before_us=body.not_before_us,
        expires_us=body.expires_us,
        purpose=body.purpose,
        case_id=body.case_id,
        watermark_id=body.watermark_id,
        download_limit=body.download_limit,
        issued_at_us=body.issued_at_us,
        renewal=body.renewal,
    )
    return msg.SerializeToString()


def _parse(cls: type[Message], data: bytes, what: str) -> Message:
    try:
        msg = cls.FromString(data)
    except DecodeError as exc:
        raise GrantRefused(Reason.MALFORMED, f"{what} is not a valid protobuf: {exc}") from None
    if len(UnknownFieldSet(msg)):
        raise GrantRefused(Reason.MALFORMED, f"{what} has fields this verifier does not know")
    return msg


def decode_body(raw: bytes) -> GrantBody:
    """A validated GrantBody from signed bytes, or GrantRefused(MALFORMED/OVERSIZE)."""
    if len(raw) > MAX_GRANT_BYTES:
        raise GrantRefused(Reason.OVERSIZE, f"grant of {len(raw)} bytes (max {MAX_GRANT_BYTES})")
    msg = _parse(grants_pb2.Grant, raw, "grant")
    assert isinstance(msg, grants_pb2.Grant)
    if msg.version != GRANT_VERSION:
        raise GrantRefused(Reason.MALFORMED, f"grant version {msg.version} is not supported")
    ops: set[Operation] = set()
    for value in msg.operations:
        op = _PB_TO_OP.get(value)
        if op is None:
            raise GrantRefused(Reason.MALFORMED, f"unknown operation {value}")
        ops.add(op)
    body = GrantBody(
        grant_id=msg.grant_id,
        parent_id=msg.parent_id,
        issuer_org=msg.issuer_org,
        holder_org=msg.holder_org,
        holder_user=msg.holder_user,
        holder_public_key=bytes(msg.holder_public_key),
        camera_ids=frozenset(msg.camera_ids),
        area_prefixes=tuple(msg.area_prefixes),
        resource_classes=frozenset(msg.resource_classes),
        footage_from_us=msg.footage_from_us,
        footage_to_us=msg.footage_to_us,
        operations=frozenset(ops),
        not_before_us=msg.not_before_us,
        expires_us=msg.expires_us,
        purpose=msg.purpose,
        case_id=msg.case_id,
        watermark_id=msg.watermark_id,
        download_limit=msg.download_limit,
        issued_at_us=msg.issued_at_us,
        renewal=msg.renewal,
    )
    return check_body(body)


def sign_grant(body: GrantBody, private: Ed25519PrivateKey) -> Link:
    """Validate and sign `body` with `private` (the root key, or the parent's holder key)."""
    check_body(body)
    raw = encode_body(body)
    signature = private.sign(GRANT_DOMAIN + raw)
    return Link(body, raw, signature, key_id(raw_public_key(private)))


def encode_chain(links: Sequence[Link]) -> bytes:
    msg = grants_pb2.GrantChain(
        links=[
            grants_pb2.SignedGrant(grant=link.raw, signature=link.signature, key_id=link.key_id)
            for link in links
        ]
    )
    return msg.SerializeToString()


def encode_token(links: Sequence[Link]) -> str:
    """The bearer token for a chain (root first): unpadded base64url, URL- and header-safe."""
    return base64.urlsafe_b64encode(encode_chain(links)).rstrip(b"=").decode("ascii")


def decode_chain(data: bytes) -> Chain:
    if len(data) > MAX_TOKEN_CHARS:
        raise GrantRefused(Reason.OVERSIZE, f"grant chain of {len(data)} bytes")
    msg = _parse(grants_pb2.GrantChain, data, "grant chain")
    assert isinstance(msg, grants_pb2.GrantChain)
    if not msg.links:
        raise GrantRefused(Reason.MALFORMED, "grant chain has no grants")
    if len(msg.links) > MAX_LINKS:
        raise GrantRefused(Reason.OVERSIZE, f"chain of {len(msg.links)} grants (max {MAX_LINKS})")
    links = []
    for signed in msg.links:
        if len(UnknownFieldSet(signed)):
            raise GrantRefused(Reason.MALFORMED, "signed grant has unknown fields")
        if len(signed.signature) != 64 or len(signed.key_id) != KEY_ID_HEX:
            raise GrantRefused(Reason.MALFORMED, "signature or key id has the wrong length")
        body = decode_body(bytes(signed.grant))
        links.append(Link(body, bytes(signed.grant), bytes(signed.signature), signed.key_id))
    return Chain(tuple(links))


def decode_token(token: str | bytes) -> Chain:
    """Parse a bearer token into a Chain; GrantRefused(OVERSIZE/MALFORMED) for anything else.

    Only parsing happens here: signatures, narrowing and time are `verify_chain`'s job."""
    if isinstance(token, str):
        try:
            token = token.strip().encode("ascii")
        except UnicodeEncodeError:
            raise GrantRefused(Reason.MALFORMED, "token is not ASCII base64url") from None
    if len(token) > MAX_TOKEN_CHARS:
        raise GrantRefused(
            Reason.OVERSIZE, f"token of {len(token)} characters (max {MAX_TOKEN_CHARS})"
        )
    if not token:
        raise GrantRefused(Reason.MALFORMED, "token is empty")
    try:
        data = base64.b64decode(token + b"=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise GrantRefused(Reason.MALFORMED, "token is not base64url") from None
    return decode_chain(data)


def load_public_key(public_raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes; GrantRefused(MALFORMED) otherwise."""
    try:
        return Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError:
        raise GrantRefused(Reason.MALFORMED, "not a 32-byte Ed25519 public key") from None


def anchors_from(public_keys: Sequence[bytes]) -> dict[str, Ed25519PublicKey]:
    """Trust anchors (key id -> key) from raw root public keys: what every verifier holds."""
    return {key_id(raw): load_public_key(raw) for raw in public_keys}
