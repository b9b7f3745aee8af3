"""One exception for every refusal, with a machine-readable reason and a sentence for people.

Every check in the sharing core (token decoding, signatures, the delegation chain, policy,
revocation, signed URLs, use limits) raises `GrantRefused`. The HTTP layer maps the reason to a
status code and the audit log records it verbatim, so a refusal is always explained the same
way to the user, the operator and the auditor:

    GrantRefused(reason, message)     str() -> "reason: message"
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why something was refused. Values are stable: they are stored in the audit log."""

    MALFORMED = "malformed"  # garbage, undecodable or structurally invalid token/request
    OVERSIZE = "oversize"  # larger than any legitimate token/URL/request
    BAD_SIGNATURE = "bad_signature"  # a signature does not verify
    UNKNOWN_KEY = "unknown_key"  # signed by a key that is not a trusted root
    BROKEN_CHAIN = "broken_chain"  # links do not follow each other (ids, keys, depth)
    NOT_DELEGABLE = "not_delegable"  # a child under a grant without a holder key
    WIDENED = "widened"  # a child grant wider than its parent in some dimension
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"  # the grant itself or one of its ancestors
    REVOCATION_STALE = "revocation_stale"  # no fresh revocation list: fail closed
    CAMERA_OUT_OF_SCOPE = "camera_out_of_scope"
    OUTSIDE_WINDOW = "outside_window"  # footage time outside the grant's window
    OPERATION_NOT_GRANTED = "operation_not_granted"
    NOT_ENTITLED = "not_entitled"  # the organisation is not entitled to that camera/area
    WRONG_HOLDER = "wrong_holder"  # presented by someone the grant was not issued to
    USES_EXHAUSTED = "uses_exhausted"  # a single-use (or n-use) download already used
    CASE_REQUIRED = "case_required"  # a footage window over 24 h without a case id
    ROLE_NOT_ALLOWED = "role_not_allowed"
    BAD_REQUEST = "bad_request"  # a grant request that cannot be honoured as asked
    URL_TAMPERED = "url_tampered"  # a signed segment URL whose signature does not match
    URL_EXPIRED = "url_expired"
    UNKNOWN_GRANT = "unknown_grant"  # a grant id this controller never issued or registered
    LIST_FULL = "list_full"  # the revocation list is at its bound: no more entries


class GrantRefused(Exception):
    """A request was refused; nothing was served or changed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
