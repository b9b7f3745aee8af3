"""Plain data shared by the agent's packages (sources, segmenter, store, uplink, health).

Kept free of I/O so the pure decision functions (eviction, scheduling of uploads) take and
return these types and are tested without touching disk or network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag, StrEnum


class SegmentState(StrEnum):
    UNSENT = "unsent"
    UPLOADED = "uploaded"


class SegmentFlag(IntFlag):
    """Matches vigil.v1.SegmentFlag on the wire."""

    NONE = 0
    DISCONTINUITY = 1  # begins after a gap or discontinuity in the stream
    TRUNCATED = 2  # cut short by a disconnect or stop; still plays
    # Recorded while the agent's clock was off the controller's by more than the threshold
    # (edge_agent.clock.ClockOffset): its times may be off by that much.
    CLOCK_SKEW = 4


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One committed, indexed segment in the local buffer."""

    segment_id: str
    camera_id: str
    start_us: int
    duration_us: int
    size_bytes: int
    sha256: str  # hex
    prev_sha256: str  # hex; "" for the first segment of a camera
    container: str  # "ts" or "mp4"
    flags: SegmentFlag
    state: SegmentState
    filename: str  # relative to the buffer's segment directory

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us


@dataclass(frozen=True, slots=True)
class Hold:
    """A pinned (evidence) time range of one camera: never evicted while it exists."""

    hold_id: str
    camera_id: str
    start_us: int
    end_us: int
    case_id: str


@dataclass(frozen=True, slots=True)
class EvictionRecord:
    """A segment removed from the buffer. Unsent ones are losses and must be reported."""

    record_id: int
    segment_id: str
    camera_id: str
    start_us: int
    end_us: int
    size_bytes: int
    was_uploaded: bool
    at_us: int
    reported: bool


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of time a camera produced no segment (disconnect, stall, broken stream)."""

    camera_id: str
    start_us: int
    end_us: int
    reason: str


@dataclass(slots=True)
class CameraStatus:
    """Live figures of one camera's capture, updated by its worker, read by health reporting."""

    camera_id: str
    connected: bool = False
    last_frame_us: int = 0
    last_keyframe_us: int = 0
    fps: float = 0.0
    bitrate_bps: int = 0
    last_error: str = ""
    gaps: list[Gap] = field(default_factory=list)
    # What the camera is doing (capture.status.CameraState: starting, streaming,
    # unsupported_codec, auth_failed, ...) and why, in words without credentials. An empty
    # state is derived from `connected` (statuses built by hand, older callers).
    state: str = ""
    reason: str = ""
    # Measured seconds between keyframes (0: not measured yet).
    gop_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """Something operators must hear about (published on MQTT `event` by the health reporter).

    `kind` is one of: camera_lost, camera_back, disk_low, unsent_evicted, chain_break,
    clock_skew, cert_near_expiry, events_dropped, long_gop, codec_changed, audio_changed,
    audio_lost, file_rejected, image_fault, image_ok (the names of vigil.v1.Event.Kind,
    lower case).
    """

    kind: str
    at_us: int
    camera_id: str = ""
    start_us: int = 0
    end_us: int = 0
    size_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BufferStats:
    """What the buffer holds, for health reports and the scheduler's inventory."""

    total_bytes: int
    quota_bytes: int
    unsent_segments: int
    unsent_bytes: int
    uploaded_segments: int
    uploaded_bytes: int
    held_segments: int
    oldest_unsent_start_us: int | None
