"""How refusals look over HTTP: one JSON shape, one status per reason.

Every error the API returns is `{"reason": "<stable code>", "message": "<sentence>"}` with a
status that says what the client can do about it:

    400 malformed, bad_request, case_required      fix the request
    401 unauthenticated, bad_signature, unknown_key, broken_chain, url_tampered, session errors
                                                   the credential is not authentic: log in again
    403 widened, revoked, camera_out_of_scope, outside_window, operation_not_granted,
        not_entitled, wrong_holder, role_not_allowed, not_yet_valid, not_delegable
                                                   authentic but not allowed
    404 unknown_camera, unknown_segment, no_footage, unknown_device, unknown_grant
    410 expired, url_expired, uses_exhausted       it was valid once: get a new one
    413 oversize                                   larger than anything legitimate
    416 range_not_satisfiable
    429 rate_limited
    507 list_full                                  the revocation list is at its bound
    503 revocation_stale, audit_unavailable, storage_unavailable, fleet_unavailable

The mapping is a pure function (`status_for`), so the table above is tested as data.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi.responses import JSONResponse

from controller.grants.errors import Reason

_STATUS: Mapping[str, int] = {
    Reason.MALFORMED: 400,
    Reason.BAD_REQUEST: 400,
    Reason.CASE_REQUIRED: 400,
    Reason.OVERSIZE: 413,
    Reason.BAD_SIGNATURE: 401,
    Reason.UNKNOWN_KEY: 401,
    Reason.BROKEN_CHAIN: 401,
    Reason.URL_TAMPERED: 401,
    Reason.NOT_DELEGABLE: 403,
    Reason.WIDENED: 403,
    Reason.NOT_YET_VALID: 403,
    Reason.REVOKED: 403,
    Reason.CAMERA_OUT_OF_SCOPE: 403,
    Reason.OUTSIDE_WINDOW: 403,
    Reason.OPERATION_NOT_GRANTED: 403,
    Reason.NOT_ENTITLED: 403,
    Reason.WRONG_HOLDER: 403,
    Reason.ROLE_NOT_ALLOWED: 403,
    Reason.EXPIRED: 410,
    Reason.URL_EXPIRED: 410,
    Reason.USES_EXHAUSTED: 410,
    Reason.REVOCATION_STALE: 503,
    Reason.UNKNOWN_GRANT: 404,
    Reason.LIST_FULL: 507,
    "unauthenticated": 401,
    "unknown_camera": 404,
    "unknown_segment": 404,
    "unknown_device": 404,
    "no_footage": 404,
    "not_found": 404,
    "range_not_satisfiable": 416,
    "rate_limited": 429,
    "audit_unavailable": 503,
    "storage_unavailable": 503,
    "catalog_unavailable": 503,
    "fleet_unavailable": 503,
    "export_failed": 500,
}

# Session problems are all "log in again".
SESSION_REASONS = frozenset(
    {"malformed", "oversize", "bad_signature", "expired", "not_yet_valid", "ended"}
)


def status_for(reason: str) -> int:
    """The HTTP status for a refusal reason (400 for anything unknown)."""
    return _STATUS.get(reason, 400)


class ApiError(Exception):
    """Raised by routes; rendered as `{"reason", "message"}` with `status`."""

    def __init__(
        self,
        reason: str,
        message: str,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.status = status_for(reason) if status is None else status
        self.headers = dict(headers or {})


def error_response(
    status: int, reason: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer realm="vigil"')
    extra.setdefault("Cache-Control", "no-store")
    return JSONResponse({"reason": reason, "message": message}, status_code=status, headers=extra)
