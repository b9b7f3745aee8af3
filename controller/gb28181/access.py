"""GB/T 28181 device access (devices REGISTER to Vigil): decisions only, no I/O.

A device REGISTERs with its 20-digit code as the From user. Vigil answers the first REGISTER
with a 401 digest challenge (MD5, qop auth) whose nonce is *stateless*: the issue time and an
HMAC of it under a per-process key, so no nonce table grows with forged requests, and a nonce
older than `NONCE_TTL_S` is answered with a fresh challenge marked `stale=true`. The digest is
checked against the device's stored HA1 (never a password). Each refusal is a status and a
sentence: 400 malformed, 403 an unknown or revoked code, or a digest that does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from controller.gb28181.codes import is_code

NONCE_TTL_S = 300
MIN_EXPIRES_S, MAX_EXPIRES_S = 60, 86_400
_PAIR = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1_of(device_id: str, realm: str, password: str) -> str:
    return md5(f"{device_id}:{realm}:{password}")


class Nonces:
    """Stateless nonces: `<issue second, hex><HMAC-SHA256 of it, 16 hex>`."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._key, stamp.encode("ascii"), hashlib.sha256).hexdigest()[:16]

    def issue(self, now_s: float) -> str:
        stamp = f"{int(now_s):x}"
        return stamp + self._mac(stamp)

    def fresh(self, nonce: str, now_s: float) -> bool | None:
        """True: ours and fresh; False: ours but expired (stale); None: not ours."""
        if len(nonce) <= 16 or len(nonce) > 40:
            return None
        stamp, mac = nonce[:-16], nonce[-16:]
        if not re.fullmatch(r"[0-9a-f]{1,16}", stamp):
            return None
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return None
        age = now_s - int(stamp, 16)
        return -5 <= age <= NONCE_TTL_S


@dataclass(frozen=True, slots=True)
class Known:
    """What the database says about a device code."""

    device_id: str
    ha1: str
    realm: str
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int  # 200, 401 (challenge), 400, 403
    reason: str  # a sentence for the log and the SIP reason phrase
    expires_s: int = 0  # granted expiry on 200 (0: unregistered)
    challenge: str = ""  # WWW-Authenticate value on 401


def challenge(realm: str, nonce: str, stale: bool = False) -> str:
    value = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
    return value + (", stale=true" if stale else "")


def parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"authorization scheme {scheme[:20]!r} is not Digest")
    fields = {k.lower(): (q if q or not u else u) for k, q, u in _PAIR.findall(rest)}
    for need in ("username", "nonce", "uri", "response"):
        if not fields.get(need):
            raise ValueError(f"authorization has no {need}")
    return fields


def expected_response(ha1: str, method: str, f: dict[str, str]) -> str:
    ha2 = md5(f"{method}:{f['uri']}")
    qop = f.get("qop", "").lower()
    if qop == "auth":
        return md5(f"{ha1}:{f['nonce']}:{f.get('nc', '')}:{f.get('cnonce', '')}:auth:{ha2}")
    return md5(f"{ha1}:{f['nonce']}:{ha2}")


def granted_expiry(expires_header: str) -> int:
    """The expiry to grant for an Expires header ("" : an hour); 0 stays 0 (un-REGISTER)."""
    text = expires_header.strip()
    if not text:
        return 3600
    if not text.isdigit():
        raise ValueError(f"Expires {text[:20]!r} is not a number")
    asked = int(text)
    return 0 if asked == 0 else min(max(asked, MIN_EXPIRES_S), MAX_EXPIRES_S)


def judge_register(
    device_id: str,
    authorization: str,
    expires_header: str,
    known: Known | None,
    realm: str,
    nonces: Nonces,
    now_s: float,
) -> Verdict:
    """What to answer a REGISTER from `device_id` (its From user)."""
    if not is_code(device_id):
        return Verdict(400, f"From user {device_id[:24]!r} is not a 20-digit device code")
    if known is None:
        return Verdict(403, f"device {device_id} is not known to Vigil (issue it a password)")
    if known.revoked:
        return Verdict(403, f"device {device_id} is revoked")
    try:
        expires = granted_expiry(expires_header)
    except ValueError as exc:
        return Verdict(400, str(exc))
    if not authorization:
        return Verdict(401, "challenge", challenge=challenge(realm, nonces.issue(now_s)))
    try:
        f = parse_authorization(authorization)
    except ValueError as exc:
        return Verdict(400, str(exc))
    if f["username"] != device_id:
        return Verdict(403, f"digest username {f['username'][:24]!r} is not the From user")
    if f.get("realm", "") != known.realm:
        return Verdict(403, f"digest realm {f.get('realm', '')[:24]!r} is not {known.realm!r}")
    if f.get("algorithm", "MD5").upper() != "MD5":
        return Verdict(403, "digest algorithm is not MD5")
    fresh = nonces.fresh(f["nonce"], now_s)
    if fresh is None:
        return Verdict(403, "digest nonce was not issued by Vigil")
    want = expected_response(known.ha1, "REGISTER", f)
    if not hmac.compare_digest(want, f["response"].lower()):
        return Verdict(403, "digest response does not verify (wrong password?)")
    if not fresh:
        stale = challenge(realm, nonces.issue(now_s), stale=True)
        return Verdict(401, "nonce expired", challenge=stale)
    return Verdict(200, "registered" if expires else "unregistered", expires_s=expires)
