"""Leases as the agent sees them: checked wire data and the choice of what to send. Pure.

The controller streams `Lease` messages; each one carries the device's whole current state:
the lease (segments in send order, a rate, an expiry; an empty lease id means "no lease,
do not upload") and the complete set of holds it wants kept. The agent trusts none of it
blindly: a malformed message is refused whole (`LeaseRejected`) and the previous lease
stays in force until it expires.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from protos.vigil.v1 import agent_control_pb2

TAG_PREFIX = "vigil-job-"  # holds the controller manages (see HoldSpec in the proto)
EVIDENCE = 1
MAX_SEGMENTS = 100_000
MAX_HOLDS = 4096
MAX_RATE_BPS = 10**13
MAX_ID = 128


class LeaseRejected(ValueError):
    """A lease message that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class LeasedSegment:
    segment_id: str
    camera_id: str
    start_us: int
    size_bytes: int
    traffic_class: int


@dataclass(frozen=True, slots=True)
class WantedHold:
    """A range the controller wants kept until uploaded (`tag` is the buffer hold's case)."""

    tag: str
    camera_id: str
    start_us: int
    end_us: int
    traffic_class: int
    case_id: str

    def key(self) -> tuple[str, int, int, str]:
        return (self.camera_id, self.start_us, self.end_us, self.tag)


@dataclass(frozen=True, slots=True)
class AgentLease:
    lease_id: str
    segments: tuple[LeasedSegment, ...]
    rate_bps: int
    expires_us: int
    traffic_class: int
    plan_version: int

    def usable(self, now_us: int) -> bool:
        """Whether the agent may upload under this lease at `now_us`."""
        return bool(self.segments) and self.rate_bps > 0 and now_us < self.expires_us


@dataclass(frozen=True, slots=True)
class LeaseUpdate:
    """One stream message: the lease (None: none) and the holds (None: not included)."""

    lease: AgentLease | None
    holds: tuple[WantedHold, ...] | None


def _text(what: str, value: str) -> str:
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise LeaseRejected(f"{what} {value[:40]!r} is not a 1-{MAX_ID} character printable id")
    return value


def parse_lease(msg: agent_control_pb2.Lease) -> LeaseUpdate:
    """Check a stream message whole; LeaseRejected names the first problem."""
    if len(msg.segments) > MAX_SEGMENTS or len(msg.holds) > MAX_HOLDS:
        raise LeaseRejected(
            f"oversize lease ({len(msg.segments)} segments, {len(msg.holds)} holds)"
        )
    holds: tuple[WantedHold, ...] | None = None
    if msg.holds_complete:
        found: list[WantedHold] = []
        for h in msg.holds:
            tag = _text("hold tag", h.hold_tag)
            if not tag.startswith(TAG_PREFIX):
                raise LeaseRejected(f"hold tag {tag!r} does not start with {TAG_PREFIX!r}")
            start, end = h.range.start_unix_us, h.range.end_unix_us
            if start < 0 or end <= start:
                raise LeaseRejected(f"hold {tag}: empty or reversed range [{start}, {end})")
            found.append(
                WantedHold(
                    tag,
                    _text("camera id", h.camera_id),
                    start,
                    end,
                    int(h.traffic_class) or EVIDENCE,
                    h.case_id[:MAX_ID],
                )
            )
        holds = tuple(found)
    if not msg.lease_id:
        return LeaseUpdate(None, holds)
    lease_id = _text("lease id", msg.lease_id)
    if not 0 <= msg.rate_bps <= MAX_RATE_BPS:
        raise LeaseRejected(f"lease {lease_id}: rate {msg.rate_bps} bit/s is impossible")
    seen: set[str] = set()
    segments = []
    for s in msg.segments:
        sid = _text("segment id", s.segment_id)
        if sid in seen:
            raise LeaseRejected(f"lease {lease_id}: segment {sid} listed twice")
        seen.add(sid)
        if s.size_bytes < 0 or s.start_unix_us < 0:
            raise LeaseRejected(f"lease {lease_id}: segment {sid} has a negative size or start")
        segments.append(
            LeasedSegment(
                sid,
                _text("camera id", s.camera_id),
                s.start_unix_us,
                s.size_bytes,
                int(s.traffic_class),
            )  # fmt: skip
        )
    lease = AgentLease(
        lease_id,
        tuple(segments),
        msg.rate_bps,
        msg.expires_unix_us,
        int(msg.traffic_class),
        msg.plan_version,
    )
    return LeaseUpdate(lease, holds)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What `next_segment` found: a segment to send (or None), whether it is the lease's
    last (nothing else is left to start), and segments it learnt are done or failed on the
    way (to be remembered by the caller)."""

    segment: LeasedSegment | None
    last: bool = False
    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


def next_segment(
    lease: AgentLease,
    done: Collection[str],
    failed: Collection[str],
    in_flight: Mapping[str, str],
    parked: Mapping[str, float],
    mono_now: float,
    state_of: Callable[[str], str | None],
) -> Candidate:
    """The first segment of the lease, in lease order, that can be sent now.

    `in_flight` maps camera -> segment being uploaded (one per camera, for the hash chain);
    `state_of(segment_id)` is its buffer state ("unsent", "uploaded", or None when the
    buffer no longer has it), asked only for segments still in question. A segment the
    buffer lost, or the uploader parked (the controller refused it), fails; an uploaded
    one is done. `last` tells the caller to ask for the next lease now, while this segment
    is still on the wire, so the link never idles between leases.
    """
    newly_done: list[str] = []
    newly_failed: list[str] = []
    flying = set(in_flight.values())
    chosen: LeasedSegment | None = None
    others = False  # anything besides `chosen` still to start
    for seg in lease.segments:
        sid = seg.segment_id
        if sid in done or sid in failed or sid in flying:
            continue
        if chosen is not None:
            others = True
            break
        state = state_of(sid)
        if state is None:
            newly_failed.append(sid)
        elif state == "uploaded":
            newly_done.append(sid)
        elif parked.get(sid, -1.0) > mono_now:
            newly_failed.append(sid)
        elif seg.camera_id in in_flight:
            others = True  # waits for its camera's upload in flight
        else:
            chosen = seg
    return Candidate(
        chosen, chosen is not None and not others, tuple(newly_done), tuple(newly_failed)
    )
