"""The uplink's pure decisions and plain result types (no I/O, no threads).

What to send given the server's `QueryOffset` answer, the wire header of a segment, and a
deadline for a paced transfer: unit-tested in tests/unit/test_uplink_decisions.py; the
client (client.py) only carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge_agent.model import SegmentInfo
from edge_agent.uplink.errors import PermanentError
from protos.vigil.v1 import ingest_pb2


class Outcome(StrEnum):
    COMMITTED = "committed"
    ALREADY_COMMITTED = "already_committed"
    # Verified and held durably by the city (its commit queue), committed to the object
    # store as soon as that answers: as safe as committed for this agent's buffer.
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The server's acknowledgement: only this allows marking a segment uploaded."""

    segment_id: str
    outcome: Outcome
    # None when the server answered "already committed" to QueryOffset (chain judged back then).
    chain_ok: bool | None
    object_key: str
    resumed_from: int  # bytes the server already held when this upload started
    bytes_sent: int  # segment bytes this upload streamed


@dataclass(frozen=True, slots=True)
class ServerOffset:
    offset: int
    committed: bool
    sha256: str  # hex; "" when the server did not say


@dataclass(frozen=True, slots=True)
class ResumeFrom:
    """Stream the segment starting at `offset` (0 = from the beginning)."""

    offset: int


@dataclass(frozen=True, slots=True)
class AlreadyThere:
    """The server has committed this very segment (same SHA-256): nothing to send."""


@dataclass(frozen=True, slots=True)
class OfferConflict:
    """The server committed this id with another SHA-256 (`server_sha256`).

    We still send our header (no data) so the controller records the possible tampering
    centrally; it answers ALREADY_EXISTS, which surfaces as ConflictError.
    """

    server_sha256: str


def plan_resume(
    info: SegmentInfo, server: ServerOffset
) -> ResumeFrom | AlreadyThere | OfferConflict:
    """Decide what to send from the server's `QueryOffset` answer (pure).

    Raises PermanentError when the server claims more bytes than the segment has.
    """
    if server.committed:
        if server.sha256 and server.sha256.lower() != info.sha256.lower():
            return OfferConflict(server.sha256.lower())
        return AlreadyThere()
    if server.offset < 0 or server.offset > info.size_bytes:
        raise PermanentError(
            f"segment {info.segment_id}: the controller holds {server.offset} bytes of a "
            f"{info.size_bytes}-byte segment",
            "OUT_OF_RANGE",
        )
    return ResumeFrom(server.offset)


def build_header(info: SegmentInfo, offset: int, lease_id: str) -> ingest_pb2.SegmentHeader:
    """The wire header for `info` (hex hashes become raw bytes on the wire)."""
    return ingest_pb2.SegmentHeader(
        segment_id=info.segment_id,
        camera_id=info.camera_id,
        start_unix_us=info.start_us,
        duration_us=info.duration_us,
        size_bytes=info.size_bytes,
        sha256=bytes.fromhex(info.sha256),
        prev_sha256=bytes.fromhex(info.prev_sha256) if info.prev_sha256 else b"",
        lease_id=lease_id,
        offset=offset,
        container=info.container,
        flags=int(info.flags),
    )


def upload_deadline_s(remaining_bytes: int, rate_bps: int | None, floor_s: float = 30.0) -> float:
    """A whole-call deadline generous enough for the paced transfer (pure).

    Three times the paced transfer time, assuming at least 256 kbit/s when unlimited, so a
    dead link is noticed without ever cutting a healthy slow upload short (resume makes a
    deadline cheap anyway: what arrived stays arrived).
    """
    rate = rate_bps if rate_bps is not None else 256_000
    return floor_s + 3.0 * remaining_bytes * 8 / rate
