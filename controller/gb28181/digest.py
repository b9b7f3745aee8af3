"""HTTP digest authentication for REGISTER (RFC 2617 as SIP uses it, RFC 3261 §22). Pure.

GB/T 28181 upper platforms challenge every REGISTER with a 401 and MD5 digest; many use
stateless nonces (a fresh nonce on every challenge, no stale=true), so a client never caches
a nonce: each 401 is answered once with the nonce it carries, and a second 401 to an
authenticated REGISTER means the password is wrong (the caller stops and logs it instead of
looping).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

_PAIR = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class DigestError(ValueError):
    """The challenge cannot be answered (not digest, no nonce, an algorithm we lack)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    opaque: str = ""
    algorithm: str = "MD5"
    qop: str = ""  # "auth" when offered, "" otherwise (auth-int is never chosen)


def parse_challenge(value: str) -> Challenge:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"authentication scheme {scheme[:20]!r} is not Digest")
    fields = {k.lower(): (q if q or not u else u) for k, q, u in _PAIR.findall(rest)}
    if not fields.get("nonce"):
        raise DigestError("the challenge has no nonce")
    algorithm = fields.get("algorithm", "MD5") or "MD5"
    if algorithm.upper() != "MD5":
        raise DigestError(f"digest algorithm {algorithm[:20]!r} is not supported (MD5 only)")
    qops = [q.strip().lower() for q in fields.get("qop", "").split(",") if q.strip()]
    return Challenge(
        realm=fields.get("realm", ""),
        nonce=fields["nonce"],
        opaque=fields.get("opaque", ""),
        algorithm="MD5",
        qop="auth" if "auth" in qops else "",
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def response_value(
    ch: Challenge, username: str, password: str, method: str, uri: str, cnonce: str, nc: int
) -> str:
    ha1 = _md5(f"{username}:{ch.realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if ch.qop:
        return _md5(f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:{ch.qop}:{ha2}")
    return _md5(f"{ha1}:{ch.nonce}:{ha2}")


def authorization(
    ch: Challenge, username: str, password: str, method: str, uri: str, cnonce: str = ""
) -> str:
    """The Authorization header value answering `ch` (nonce count 1: nonces are not reused)."""
    cnonce = cnonce or secrets.token_hex(8)
    value = response_value(ch, username, password, method, uri, cnonce, 1)
    parts = [
        f'username="{username}"',
        f'realm="{ch.realm}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
        f'response="{value}"',
        "algorithm=MD5",
    ]
    if ch.qop:
        parts += [f"qop={ch.qop}", f'cnonce="{cnonce}"', "nc=00000001"]
    if ch.opaque:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)
