"""The ingest decisions, pure: header validation, resume offsets, chunk accounting, the chain.

Everything here takes and returns plain data and raises `IngestError` with a status `Code`
(the servicer maps codes onto gRPC status codes once). Codes, and what an agent should do:

    INVALID_ARGUMENT   malformed stream or header (no header, two headers, chunk first, chunk
                       over the limit, more or fewer bytes than declared, bad hash length,
                       absurd timestamps, bad id, an id outside its camera's namespace):
                       fix the client; nothing was committed
    DATA_LOSS          the bytes do not hash to the declared SHA-256; staged bytes discarded
    NOT_FOUND          the camera is not registered
    PERMISSION_DENIED  the camera belongs to another device, or the device is unknown
    UNAUTHENTICATED    no client certificate identity on the connection
    ALREADY_EXISTS     the segment id is committed with another SHA-256 (or for another
                       camera): refused and recorded as a possible tampering
    ABORTED            a race: the resume offset is not what the server holds, or another
                       stream is uploading the same segment; ask QueryOffset and retry
    RESOURCE_EXHAUSTED the concurrent-upload limit, the device's share of it or its staging
                       budget is reached; retry later
    UNAVAILABLE        storage or catalog failed; retry later (everything is idempotent)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, StrEnum

# 2000-01-01T00:00:00Z: no camera of this platform recorded earlier; older stamps are a
# clock reset (1970) or garbage.
MIN_START_US = 946_684_800_000_000
SEGMENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
CAMERA_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CONTAINERS = frozenset({"ts", "mp4"})
KNOWN_FLAGS = 0b111  # discontinuity, truncated, clock_skew (ingest.proto SegmentFlag)
MAX_LEASE_ID = 128
# Two segments whose edges are this close are back to back (no recording between them).
CONTIGUOUS_US = 1_000_000


class Code(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DATA_LOSS = "DATA_LOSS"
    NOT_FOUND = "NOT_FOUND"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"


class IngestError(Exception):
    """An upload or query refused; `code` says which kind, the message says which check."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    max_segment_bytes: int = 256 * 1024 * 1024
    max_chunk_bytes: int = 4 * 1024 * 1024
    max_duration_us: int = 3600 * 1_000_000
    max_future_us: int = 86400 * 1_000_000


@dataclass(frozen=True, slots=True)
class Header:
    """A segment header as plain data; hashes are lower-case hex ("" when absent)."""

    segment_id: str
    camera_id: str
    start_us: int
    duration_us: int
    size_bytes: int
    sha256: str
    prev_sha256: str
    lease_id: str = ""
    offset: int = 0
    container: str = "ts"
    flags: int = 0

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    def same_segment(self, other: Header) -> bool:
        """Whether two headers describe the same bytes (offset and lease may differ)."""
        return (
            self.segment_id,
            self.camera_id,
            self.start_us,
            self.duration_us,
            self.size_bytes,
            self.sha256,
            self.prev_sha256,
            self.container,
        ) == (
            other.segment_id,
            other.camera_id,
            other.start_us,
            other.duration_us,
            other.size_bytes,
            other.sha256,
            other.prev_sha256,
            other.container,
        )


def _bad(message: str) -> IngestError:
    return IngestError(Code.INVALID_ARGUMENT, message)


def check_ids(segment_id: str, camera_id: str) -> None:
    """Ids become object keys and file names: only plain characters, bounded length."""
    if not SEGMENT_ID_RE.fullmatch(segment_id):
        raise _bad(f"invalid segment_id {segment_id[:80]!r}: 1-128 of A-Z a-z 0-9 _ . : -")
    if not CAMERA_ID_RE.fullmatch(camera_id):
        raise _bad(f"invalid camera_id {camera_id[:80]!r}: 1-64 of A-Z a-z 0-9 _ . -")


def check_scope(segment_id: str, camera_id: str) -> None:
    """A segment id lives in its camera's namespace: `{camera_id}-...`, as agents name them.

    Why: segment ids are the catalog's key for the whole city. Cameras are registered to
    one device each (checked on every upload) and their ids are unique, so an id that must
    begin with its own camera's id can never be one another device will need: a device
    cannot squat another's footage by committing its ids first, nor ask whether they exist
    (this is checked before anything is looked up, so the answer is the same either way).
    """
    if not segment_id.startswith(f"{camera_id}-") or len(segment_id) <= len(camera_id) + 1:
        raise _bad(
            f"segment_id {segment_id[:80]!r} is not in camera {camera_id}'s namespace: "
            f"ids of this camera begin with '{camera_id}-'"
        )


def hash_hex(raw: bytes, field: str, required: bool) -> str:
    """A SHA-256 from the wire: exactly 32 bytes (or empty when not required)."""
    if not raw and not required:
        return ""
    if len(raw) != 32:
        raise _bad(f"{field} must be 32 bytes (SHA-256), got {len(raw)}")
    return raw.hex()


def validate_header(h: Header, limits: Limits, now_us: int) -> Header:
    """Check every field against the limits and the controller's clock; returns it normalised."""
    check_ids(h.segment_id, h.camera_id)
    check_scope(h.segment_id, h.camera_id)
    if len(h.sha256) != 64:
        raise _bad("sha256 must be 32 bytes (SHA-256)")
    if h.prev_sha256 and len(h.prev_sha256) != 64:
        raise _bad("prev_sha256 must be empty or 32 bytes (SHA-256)")
    if h.size_bytes <= 0:
        raise _bad(f"size_bytes must be positive, got {h.size_bytes}")
    if h.size_bytes > limits.max_segment_bytes:
        raise _bad(
            f"size_bytes {h.size_bytes} exceeds the segment limit of {limits.max_segment_bytes}"
        )
    if not 0 <= h.offset <= h.size_bytes:
        raise _bad(f"offset {h.offset} is outside 0..{h.size_bytes}")
    if h.start_us < MIN_START_US:
        raise _bad(f"start_unix_us {h.start_us} is before 2000-01-01 (camera clock not set?)")
    if h.start_us > now_us + limits.max_future_us:
        raise _bad(
            f"start_unix_us {h.start_us} is more than {limits.max_future_us // 1_000_000} s "
            f"in the future (controller time {now_us})"
        )
    if not 0 < h.duration_us <= limits.max_duration_us:
        raise _bad(f"duration_us {h.duration_us} is outside 1..{limits.max_duration_us}")
    container = h.container or "ts"
    if container not in CONTAINERS:
        raise _bad(f"container {h.container[:20]!r} is not one of {sorted(CONTAINERS)}")
    if h.flags & ~KNOWN_FLAGS:
        raise _bad(f"flags {h.flags:#x} has unknown bits")
    if len(h.lease_id) > MAX_LEASE_ID:
        raise _bad(f"lease_id longer than {MAX_LEASE_ID} characters")
    if container != h.container:
        return Header(
            h.segment_id,
            h.camera_id,
            h.start_us,
            h.duration_us,
            h.size_bytes,
            h.sha256,
            h.prev_sha256,
            h.lease_id,
            h.offset,
            container,
            h.flags,
        )
    return h


class StagingAction(Enum):
    FRESH = "fresh"  # discard whatever is staged, start a new file at 0
    CONTINUE = "continue"  # keep the first `start` staged bytes and append after them


@dataclass(frozen=True, slots=True)
class OffsetPlan:
    action: StagingAction
    start: int


def decide_offset(requested: int, staged_bytes: int | None, staged_matches: bool) -> OffsetPlan:
    """Where a (resumed) stream starts, given what is staged for the segment.

    `staged_bytes` is None when nothing is staged; `staged_matches` says whether the staged
    header describes the same segment. A client may restart lower than what is held (the
    surplus is dropped) but never higher: bytes in between would be missing.
    """
    if staged_bytes is None or not staged_matches:
        if requested == 0:
            return OffsetPlan(StagingAction.FRESH, 0)
        raise IngestError(
            Code.ABORTED,
            f"offset {requested} requested but the server holds 0 bytes of this segment; "
            "resume from 0",
        )
    if requested > staged_bytes:
        raise IngestError(
            Code.ABORTED,
            f"offset {requested} requested but the server holds {staged_bytes} bytes; "
            f"resume from {staged_bytes}",
        )
    if requested == 0:
        return OffsetPlan(StagingAction.FRESH, 0)
    return OffsetPlan(StagingAction.CONTINUE, requested)


def check_chunk(received: int, chunk_len: int, declared: int, max_chunk: int) -> None:
    """Refuse a chunk over the limit or one that would run past the declared size."""
    if chunk_len > max_chunk:
        raise _bad(f"chunk of {chunk_len} bytes exceeds the chunk limit of {max_chunk}")
    if received + chunk_len > declared:
        raise _bad(
            f"more bytes than declared: {received + chunk_len} > size_bytes {declared}; "
            f"the server holds {received}"
        )


def check_complete(received: int, declared: int, actual_sha: str, declared_sha: str) -> None:
    """At the end of the stream: all bytes there, and they hash to what the header said."""
    if received < declared:
        raise _bad(
            f"stream ended after {received} of {declared} bytes (fewer than declared); "
            f"the server holds {received}: resume from there"
        )
    if actual_sha != declared_sha:
        raise IngestError(
            Code.DATA_LOSS,
            f"sha256 mismatch: the bytes hash to {actual_sha}, the header says {declared_sha}; "
            "nothing committed, staged bytes discarded",
        )


class ChainFlag(StrEnum):
    OK = ""
    # The previous segment the header names is not in the catalog (not uploaded yet, or
    # never will be): recording is probably fine, the chain cannot be checked yet.
    GAP = "gap"
    # The chain link contradicts the catalog for back-to-back segments: a segment was
    # replaced, removed or forged somewhere. Operators must look.
    CHAIN_BREAK = "chain_break"


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A committed segment next to the one being ingested (same camera)."""

    segment_id: str
    start_us: int
    end_us: int
    sha256: str
    prev_sha256: str
    flag: str


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    flag: ChainFlag
    # The later segment's link now verifies against this one: clear its flag.
    heal_next: str | None = None

    @property
    def chain_ok(self) -> bool:
        return self.flag is ChainFlag.OK


def _touching(earlier_end_us: int, later_start_us: int) -> bool:
    return abs(later_start_us - earlier_end_us) <= CONTIGUOUS_US


def decide_chain(
    h: Header, previous: Neighbour | None, following: Neighbour | None
) -> ChainVerdict:
    """Judge a segment's place in its camera's hash chain against the catalog.

    - previous: the last committed segment starting before this one; following: the first
      starting after it. Empty prev_sha256 with no previous segment is a camera's first one.
    - prev_sha256 naming a segment the catalog lacks: GAP when the previous committed segment
      ends well before this starts (the named one may still come), CHAIN_BREAK when they are
      back to back (nothing can be missing in between, so the link is false).
    - A following segment whose prev_sha256 is not this one's hash while the two are back to
      back also makes this one CHAIN_BREAK; when it *is* this hash, its GAP flag is healed:
      this is the predecessor it was waiting for. A CHAIN_BREAK is never healed here: it may
      be about the following segment's *own* successor (a later link that contradicted it),
      which this arrival proves nothing about, and a tamper signal is for operators to clear.
    """
    flag = ChainFlag.OK
    if previous is None:
        if h.prev_sha256:
            flag = ChainFlag.GAP
    elif h.prev_sha256 != previous.sha256:
        if _touching(previous.end_us, h.start_us) or not h.prev_sha256:
            flag = ChainFlag.CHAIN_BREAK
        else:
            flag = ChainFlag.GAP
    heal: str | None = None
    if following is not None:
        if following.prev_sha256 == h.sha256:
            if following.flag == ChainFlag.GAP:
                heal = following.segment_id
        elif _touching(h.end_us, following.start_us):
            flag = ChainFlag.CHAIN_BREAK
    return ChainVerdict(flag, heal)
