"""The uplink's exception tree, and the pure mapping from gRPC status codes onto it.

    UplinkError                 anything that stopped one segment's upload
    ├── RetryableError          try again later (backoff): controller down, storage down,
    │                           too many concurrent uploads, deadline, connection broken
    ├── PermanentError          retrying now will not help: the server refused the upload
    │   │                       (bad header/size/hash, unknown camera, not this device's camera,
    │   │                       bad certificate); the segment stays unsent and is reported
    │   ├── ConflictError       the server holds this segment id with a different SHA-256
    │   │                       (possible tampering): never retried automatically
    │   └── SegmentGoneError    the local file vanished (evicted) or no longer matches its
    │                           index entry; the buffer reports the loss itself
    └── UploadCancelled         the uploader is stopping; not a failure

gRPC errors are translated once, in `client.py` (`raise classify_rpc_error(exc) from exc`), so
nothing above the client imports grpc or reasons about status codes.
"""

from __future__ import annotations

from enum import Enum

import grpc


class UplinkError(Exception):
    """One segment's upload did not complete; `code` is the gRPC status name, if any;
    `stage` the call that failed ("query": QueryOffset, "upload": the Upload stream, "")."""

    def __init__(self, message: str, code: str = "", stage: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.stage = stage


class RetryableError(UplinkError):
    """A transient failure: retry with backoff."""


class PermanentError(UplinkError):
    """The server refused the segment; retrying immediately cannot succeed."""


class ConflictError(PermanentError):
    """The same segment id is committed with a different SHA-256: a possible tampering."""


class SegmentGoneError(PermanentError):
    """The local segment file is missing or its size does not match the index."""


class UploadCancelled(UplinkError):
    """The upload was aborted because the uploader is stopping."""


class ErrorKind(Enum):
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    CONFLICT = "conflict"


# Why each code lands where it does:
# - UNAVAILABLE: controller down or restarting, connection reset. RESOURCE_EXHAUSTED: the server's
#   concurrent-upload limit. DEADLINE_EXCEEDED: a slow link; resume picks up what arrived.
#   ABORTED: the server gave up on a race (e.g. two streams for one segment). CANCELLED: the
#   connection went away under us. INTERNAL/UNKNOWN: a server bug or a storage backend hiccup;
#   retrying with backoff is cheap and the server verifies everything again.
# - ALREADY_EXISTS / FAILED_PRECONDITION: the ingest contract's "same id, different hash".
# - Everything else (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED,
#   UNIMPLEMENTED, OUT_OF_RANGE, DATA_LOSS): fixing it needs a human or a new release.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
_CONFLICT = frozenset({grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION})


def classify(code: grpc.StatusCode | None) -> ErrorKind:
    """Decide what a gRPC status code means for the uploader (pure)."""
    if code is None or code in _RETRYABLE:
        return ErrorKind.RETRYABLE
    if code in _CONFLICT:
        return ErrorKind.CONFLICT
    return ErrorKind.PERMANENT


def error_for(
    code: grpc.StatusCode | None, details: str, what: str, stage: str = ""
) -> UplinkError:
    """Build the exception for a failed RPC; `what` names the call and segment, `stage`
    which of the upload's calls it was (failover treats them differently)."""
    name = code.name if code is not None else "UNKNOWN"
    message = f"{what}: {name}: {details or 'no details'}"
    kind = classify(code)
    if kind is ErrorKind.RETRYABLE:
        return RetryableError(message, name, stage)
    if kind is ErrorKind.CONFLICT:
        return ConflictError(message, name, stage)
    return PermanentError(message, name, stage)


def classify_rpc_error(exc: grpc.RpcError, what: str, stage: str = "") -> UplinkError:
    """Translate a grpc.RpcError (which is also a grpc.Call) into our tree."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    return error_for(code, details, what, stage)
