"""Short-lived signed segment URLs: HMAC-SHA256 bound to grant, segment and expiry.

A playlist is the expensive, audited decision; each segment fetch then only proves "this
segment was in a playlist issued for this grant, less than 5 minutes ago" with one HMAC, so
segment serving stays cheap (>100k checks/s on one core) and cannot be redirected to another
segment, another grant or a later time. URLs expire after at most `URL_TTL_US` (never after
the grant itself); players re-fetch the playlist, which re-signs them.

Query: `g=<grant id>&e=<expiry, unix s>&k=<key id>&s=<signature>`, all URL-safe characters,
so no percent-decoding is needed (a '%' is simply refused). The MAC input is
`grant_id.expiry.key_id.segment_id`: grant id (32 hex), expiry (digits) and key id (validated)
contain no '.', so the encoding is unambiguous. Several keys may verify (rotation); one signs.
A URL for a rendition of the segment (e.g. its H.264 conversion) signs `segment_id/rendition`
instead: segment ids never contain '/', so a URL signed for the original cannot be replayed
against a rendition route, nor the other way round.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable, Collection, Mapping
from urllib.parse import quote

from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import GRANT_ID, MAX_ID_CHARS, US_PER_S

URL_TTL_US = 5 * 60 * US_PER_S
SIG_BYTES = 16  # 128-bit truncated HMAC-SHA256
SIG_CHARS = 22  # base64url of 16 bytes, unpadded
MAX_QUERY_CHARS = 256
MIN_KEY_BYTES = 16
_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def _tampered(msg: str) -> GrantRefused:
    return GrantRefused(Reason.URL_TAMPERED, msg)


class UrlSigner:
    """Signs and checks segment URLs with `keys[current]`; any key in `keys` verifies."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"current url key {current!r} is not among the keys")
        for kid, key in keys.items():
            if not kid or len(kid) > 8 or not set(kid) <= _KEY_ID_CHARS:
                raise ValueError(f"url key id {kid!r} must be 1..8 of [a-z0-9]")
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"url key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        self._keys = dict(keys)
        self._current = current
        self._key = keys[current]

    @classmethod
    def single(cls, key: bytes) -> UrlSigner:
        return cls({"1": key}, "1")

    def _mac(
        self,
        key: bytes,
        grant_id: str,
        expires_s: int | str,
        kid: str,
        seg: str,
        rendition: str = "",
    ) -> str:
        subject = f"{seg}/{rendition}" if rendition else seg
        msg = f"{grant_id}.{expires_s}.{kid}.{subject}".encode()
        digest = hmac.digest(key, msg, "sha256")[:SIG_BYTES]
        return base64.urlsafe_b64encode(digest)[:SIG_CHARS].decode("ascii")

    @staticmethod
    def expiry_s(now_us: int, grant_expires_us: int) -> int:
        """When URLs signed now expire (unix seconds): in 5 min, never after the grant."""
        return min(now_us + URL_TTL_US, grant_expires_us) // US_PER_S

    def query(self, grant_id: str, segment_id: str, expires_s: int) -> str:
        """The signed query string (without '?') for one segment."""
        sig = self._mac(self._key, grant_id, expires_s, self._current, segment_id)
        return f"g={grant_id}&e={expires_s}&k={self._current}&s={sig}"

    def url_maker(
        self,
        prefix: str,
        grant_id: str,
        expires_s: int,
        suffix: str = ".ts",
        rendition: str = "",
    ) -> Callable[[str], str]:
        """`url_for(segment_id)` for a playlist: `{prefix}{segment_id}{suffix}?{signed query}`,
        the segment id percent-quoted in the path when it is not plain URL-safe; signed for
        `rendition` of the segment when given (see the module docstring)."""
        key, kid = self._key, self._current
        tail = f"{suffix}?g={grant_id}&e={expires_s}&k={kid}&s="
        mac = self._mac

        def url_for(segment_id: str) -> str:
            path = segment_id if _URL_SAFE.fullmatch(segment_id) else quote(segment_id, safe="")
            return prefix + path + tail + mac(key, grant_id, expires_s, kid, segment_id, rendition)

        return url_for

    def check(
        self,
        segment_id: str,
        grant_id: str,
        expires: str,
        key_id: str,
        signature: str,
        now_us: int,
        revoked: Collection[str] = (),
        rendition: str = "",
    ) -> None:
        """Accept the URL parameters, or GrantRefused(URL_TAMPERED/URL_EXPIRED/REVOKED)."""
        if len(grant_id) != 32 or not GRANT_ID.fullmatch(grant_id):
            raise _tampered("grant id in the URL is malformed")
        if not expires.isdigit() or len(expires) > 12:
            raise _tampered("expiry in the URL is malformed")
        key = self._keys.get(key_id)
        if key is None:
            raise _tampered("URL signed with an unknown key")
        if len(signature) != SIG_CHARS or not segment_id or len(segment_id) > MAX_ID_CHARS:
            raise _tampered("signature or segment id in the URL is malformed")
        expected = self._mac(key, grant_id, expires, key_id, segment_id, rendition)
        if not hmac.compare_digest(expected, signature):
            raise _tampered("URL signature does not match its grant, segment and expiry")
        if now_us >= int(expires) * US_PER_S:
            raise GrantRefused(Reason.URL_EXPIRED, "segment URL has expired: reload the playlist")
        if grant_id in revoked:
            raise GrantRefused(Reason.REVOKED, f"grant {grant_id} has been revoked")

    def check_query(
        self,
        segment_id: str,
        query: str,
        now_us: int,
        revoked: Collection[str] = (),
        rendition: str = "",
    ) -> str:
        """Check a raw query string for `segment_id` (or its `rendition`); returns the grant
        id it was signed for."""
        if len(query) > MAX_QUERY_CHARS:
            raise GrantRefused(Reason.OVERSIZE, "segment URL query is too long")
        params: dict[str, str] = {}
        for part in query.split("&"):
            name, sep, value = part.partition("=")
            if not sep or name in params or name not in ("g", "e", "k", "s"):
                raise _tampered("segment URL query is malformed")
            params[name] = value
        if len(params) != 4:
            raise _tampered("segment URL query lacks g, e, k or s")
        self.check(
            segment_id,
            params["g"],
            params["e"],
            params["k"],
            params["s"],
            now_us,
            revoked,
            rendition,
        )
        return params["g"]
