"""The segmenter's plain data: policy, packet facts, state, decisions (see the package doc)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from edge_agent.model import SegmentFlag

US = 1_000_000
_DEFAULT_FRAME_US = 40_000  # 25 fps, until the stream shows its own frame interval
JITTER_US = 5_000  # the anchor moving less than this is arrival jitter, not a backlog


@dataclass(frozen=True, slots=True)
class CutPolicy:
    """The segmenter's knobs. `for_seconds` derives sensible ones from the target duration."""

    target_us: int = 10 * US
    max_us: int = 60 * US
    forward_jump_us: int = 1 * US
    settle_us: int = 1 * US  # a live anchor counts as found once it held this long

    @classmethod
    def for_seconds(cls, segment_seconds: float, forward_jump_s: float = 1.0) -> CutPolicy:
        target = int(segment_seconds * US)
        if target <= 0:
            raise ValueError(f"segment duration must be positive, got {segment_seconds}")
        jump = int(forward_jump_s * US)
        return cls(target_us=target, max_us=max(3 * target, 60 * US), forward_jump_us=jump)


@dataclass(frozen=True, slots=True)
class PacketMeta:
    """What the core needs to know of one video packet, times in microseconds of stream time."""

    pts_us: int
    dts_us: int | None
    duration_us: int
    is_key: bool
    sps: bytes | None = None  # the SPS carried by a keyframe, if any


@dataclass(frozen=True, slots=True)
class Timeline:
    """Maps stream time to wall-clock time: wall = anchor_us + (pts - pts0_us)."""

    anchor_us: int
    pts0_us: int

    def wall(self, pts_us: int) -> int:
        return self.anchor_us + pts_us - self.pts0_us

    def shifted(self, by_us: int) -> Timeline:
        return Timeline(self.anchor_us + by_us, self.pts0_us)


@dataclass(frozen=True, slots=True)
class OpenSegment:
    start_pts_us: int
    end_pts_us: int  # the largest pts + duration written so far
    flags: SegmentFlag
    start_us: int | None  # wall clock; None while the anchor is still being refined


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    """A finished segment to commit: wall-clock start, duration from timestamps, flags."""

    start_us: int
    duration_us: int
    flags: SegmentFlag

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us


@dataclass(frozen=True, slots=True)
class GapSpan:
    start_us: int
    end_us: int
    reason: str


class Action(Enum):
    DROP = "drop"  # do not write this packet; no segment is open afterwards
    WRITE = "write"  # append to the open segment
    OPEN = "open"  # open a new segment and write this packet into it
    CUT = "cut"  # close the open segment (commit `closed`), open a new one with this packet
    CLOSE_DROP = "close_drop"  # close the open segment (commit `closed`), drop this packet


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    closed: ClosedSegment | None = None  # the segment to commit (CUT, CLOSE_DROP)
    gaps: tuple[GapSpan, ...] = ()  # missing time to record
    offset_us: int = 0  # add to the packet's pts/dts before writing it (re-based timestamps)


@dataclass(frozen=True, slots=True)
class CutState:
    """Everything the core remembers between packets of one connection (or one file)."""

    anchor_hint_us: int  # wall time given to the first packet
    live: bool  # a live source re-anchors on arrival time; a file keeps its own timeline
    refine: bool = False  # still tightening the anchor (live, first segment not closed)
    earliest_us: int | None = None  # the first packet cannot have arrived before this
    lowered_at_us: int | None = None  # arrival time the anchor last moved (while refining)
    timeline: Timeline | None = None
    segment: OpenSegment | None = None
    last_ts_us: int | None = None  # dts (or pts when dts is missing) of the previous packet
    last_now_us: int | None = None  # arrival time of the previous packet (live)
    offset_us: int = 0  # added to every timestamp since the stream's clock was re-based
    last_end_us: int | None = None  # wall time the last written packet ended
    frame_us: int = _DEFAULT_FRAME_US
    last_key_pts_us: int | None = None
    key_interval_us: int | None = None  # between the last two keyframes: the GOP cadence
    sps: bytes | None = None
    next_flags: SegmentFlag = SegmentFlag.NONE
    floor_us: int | None = None  # no segment may start before this (the previous one's end)
    gap_from_us: int | None = None  # missing time began here; reported when a segment starts
    gap_reason: str = ""
    skip_before_us: int | None = None  # already captured up to here (resuming a file)

    def advanced(
        self,
        segment: OpenSegment,
        last_ts_us: int,
        last_now_us: int | None,
        last_end_us: int,
        frame_us: int,
        last_key_pts_us: int | None,
        key_interval_us: int | None,
        sps: bytes | None,
    ) -> CutState:
        """This state after one more packet written into the open segment: what
        `dataclasses.replace` of these fields gives, in one constructor call (replace looks
        every field up by name: twice the cost, once per packet of every camera)."""
        return CutState(
            anchor_hint_us=self.anchor_hint_us,
            live=self.live,
            refine=self.refine,
            earliest_us=self.earliest_us,
            lowered_at_us=self.lowered_at_us,
            timeline=self.timeline,
            segment=segment,
            last_ts_us=last_ts_us,
            last_now_us=last_now_us,
            offset_us=self.offset_us,
            last_end_us=last_end_us,
            frame_us=frame_us,
            last_key_pts_us=last_key_pts_us,
            key_interval_us=key_interval_us,
            sps=sps,
            next_flags=self.next_flags,
            floor_us=self.floor_us,
            gap_from_us=self.gap_from_us,
            gap_reason=self.gap_reason,
            skip_before_us=self.skip_before_us,
        )
