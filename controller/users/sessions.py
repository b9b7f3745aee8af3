"""Login sessions as signed, expiring bearer tokens (pure: key and time are arguments).

    vs1.<payload, base64url JSON>.<HMAC-SHA256 of "vs1." + payload, base64url>

The payload names the user, organisation, role, the account's `session_version` (bumped when
a password changes or an account is disabled, which ends every session issued before), the
issue and expiry times and a random nonce. Any controller replica holding the same key checks
a session without a database round trip for the signature; the API still loads the account to
apply a disable or a role change at once. The key is derived from the controller's URL HMAC
key with a domain label (`derive_session_key`), so no extra secret has to be distributed: the
replicas on one database share the URL HMAC key through it (controller/grants/shared_keys.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

PREFIX = "vs1."
MAX_SESSION_CHARS = 1024
DEFAULT_TTL_US = 8 * 3600 * 1_000_000
SKEW_US = 60 * 1_000_000
_DOMAIN = b"vigil.v1.session-key"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_.=-]*")


class SessionError(Exception):
    """The session token is not acceptable; `reason` is stable (malformed, oversize,
    bad_signature, expired, not_yet_valid, ended)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class SessionClaims:
    user_id: str
    org_id: str
    role: str
    version: int
    issued_us: int
    expires_us: int
    nonce: str


def derive_session_key(url_hmac_key: bytes) -> bytes:
    """The session-signing key, derived from the URL HMAC key (domain-separated)."""
    if len(url_hmac_key) < 16:
        raise ValueError("the base key must be at least 16 bytes")
    return hmac.digest(url_hmac_key, _DOMAIN, "sha256")


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, signed_part: str) -> str:
    return _b64e(hmac.digest(key, signed_part.encode("ascii"), "sha256"))


def issue_session(
    key: bytes,
    user_id: str,
    org_id: str,
    role: str,
    version: int,
    now_us: int,
    ttl_us: int = DEFAULT_TTL_US,
) -> tuple[str, SessionClaims]:
    """A new session token and its claims."""
    if ttl_us <= 0:
        raise ValueError("session lifetime must be positive")
    claims = SessionClaims(
        user_id, org_id, role, version, now_us, now_us + ttl_us, secrets.token_hex(8)
    )
    payload = {
        "u": claims.user_id,
        "o": claims.org_id,
        "r": claims.role,
        "v": claims.version,
        "iat": claims.issued_us,
        "exp": claims.expires_us,
        "n": claims.nonce,
    }
    body = _b64e(json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode())
    signed_part = PREFIX + body
    return f"{signed_part}.{_sign(key, signed_part)}", claims


def _str(payload: dict[str, object], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise SessionError("malformed", f"session field {name!r} is missing or not text")
    return value


def _int(payload: dict[str, object], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SessionError("malformed", f"session field {name!r} is missing or not an integer")
    return value


def check_session(key: bytes, token: str, now_us: int) -> SessionClaims:
    """The claims of a valid, unexpired token; SessionError saying why not otherwise."""
    if len(token) > MAX_SESSION_CHARS:
        raise SessionError("oversize", f"session token longer than {MAX_SESSION_CHARS} chars")
    # Tokens are base64url and dots only: anything else (non-ASCII from a header or a
    # percent-decoded query) is refused here, before any encoding or comparison could raise.
    if not _TOKEN_CHARS.fullmatch(token):
        raise SessionError("malformed", "session token has characters no session token has")
    if not token.startswith(PREFIX) or token.count(".") != 2:
        raise SessionError("malformed", "not a Vigil session token")
    signed_part, _, signature = token.rpartition(".")
    if not hmac.compare_digest(_sign(key, signed_part), signature):
        raise SessionError("bad_signature", "session token signature does not verify")
    try:
        payload = json.loads(_b64d(signed_part[len(PREFIX) :]))
    except (binascii.Error, ValueError):
        raise SessionError("malformed", "session payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise SessionError("malformed", "session payload is not an object")
    claims = SessionClaims(
        user_id=_str(payload, "u"),
        org_id=_str(payload, "o"),
        role=_str(payload, "r"),
        version=_int(payload, "v"),
        issued_us=_int(payload, "iat"),
        expires_us=_int(payload, "exp"),
        nonce=_str(payload, "n"),
    )
    if claims.issued_us > now_us + SKEW_US:
        raise SessionError("not_yet_valid", "session issued in the future")
    if now_us >= claims.expires_us:
        raise SessionError("expired", "session has expired: log in again")
    return claims


def session_fingerprint(token: str) -> str:
    """A short, non-secret id of a session for logs and audit details."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:12]


# --- known clients ---------------------------------------------------------------------------
#
# A browser that logged in as a user gets `kc1.<nonce>.<mac>` (an HttpOnly cookie), the MAC
# binding the nonce to the user id under the session key. Its later login attempts for that
# user are throttled by their own budget, not the user's or the address's: an attacker
# guessing the password cannot lock the owner out of the clients they already use.

KNOWN_CLIENT_PREFIX = "kc1."
_KNOWN_CLIENT = re.compile(r"kc1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}")


def _client_mac(key: bytes, user_id: str, nonce: str) -> str:
    message = f"vigil.v1.known-client|{user_id}|{nonce}".encode()
    return _b64e(hmac.digest(key, message, "sha256"))


def issue_known_client(key: bytes, user_id: str) -> str:
    nonce = secrets.token_hex(8)
    return f"{KNOWN_CLIENT_PREFIX}{nonce}.{_client_mac(key, user_id, nonce)}"


def known_client_id(key: bytes, user_id: str, token: str | None) -> str:
    """The token's nonce when it is a valid known-client token for `user_id`, else ""."""
    if not token or not _KNOWN_CLIENT.fullmatch(token):
        return ""
    _prefix, nonce, mac = token.split(".")
    return nonce if hmac.compare_digest(_client_mac(key, user_id, nonce), mac) else ""
