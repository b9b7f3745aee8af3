"""Runs of plain frames: what `step` does to a settled open segment, without a state per frame.

Why: 24 of 25 frames of a camera are plain (not a keyframe, in order, no jump, no lost frame,
the segment's wall-clock start settled): each only extends the open segment. `step` answers
them through `cut._write_fast`, but it still builds a `PacketMeta` and a new 20-field frozen
`CutState` per frame, which was the largest part of the agent's per-packet Python beyond the
remux itself (docs/benchmarks.md, "Agent capture"). A `PlainRun` keeps the five fields such a
frame changes in mutable slots and folds them into one `CutState` when anything else comes.

Exactness: `take` accepts a frame only when `_write_fast` would answer WRITE for it (the same
tests, in the same order), and updates what `_write_fast` would update; `fold` is then the
state that stepping those frames one by one gives (test_segmenter: equal on random streams).
Anything else (a keyframe, a jump or re-base, a missing frame, the segment's length limit, a
live anchor still being refined) is refused, and the caller folds and takes the full rules.
"""

from __future__ import annotations

from edge_agent.segmenter.state import CutPolicy, CutState, OpenSegment


class PlainRun:
    """Mutable: it belongs to one writer, and lives from one full step to the next."""

    __slots__ = (
        "base",
        "offset_us",
        "frame_us",
        "taken",
        "_end_pts",
        "_last_ts",
        "_last_now",
        "_last_end",
        "_start_pts",
        "_wall0",
        "_cadence",
        "_max_us",
        "_jump_us",
    )

    def __init__(self, base: CutState, policy: CutPolicy) -> None:
        seg, tl, last = base.segment, base.timeline, base.last_ts_us
        if seg is None or tl is None or last is None:
            raise ValueError("a plain run needs an open segment")  # see `start`
        self.base = base
        self.offset_us = base.offset_us
        self.frame_us = base.frame_us
        self.taken = 0  # frames taken so far
        self._end_pts = seg.end_pts_us
        self._last_ts = last
        self._last_now = base.last_now_us
        self._last_end = base.last_end_us
        self._start_pts = seg.start_pts_us
        self._wall0 = tl.anchor_us - tl.pts0_us  # Timeline.wall(pts) = pts + this
        # A frame missing since the last keyframe may be a lost keyframe (the full rules).
        self._cadence = base.last_key_pts_us is not None and base.key_interval_us is not None
        self._max_us = policy.max_us
        self._jump_us = policy.forward_jump_us

    @classmethod
    def start(cls, state: CutState, policy: CutPolicy) -> PlainRun | None:
        """A run from `state`, or None when its frames cannot be plain (no open segment, no
        previous timestamp, or a live anchor still being refined)."""
        if (
            state.segment is None
            or state.timeline is None
            or state.last_ts_us is None
            or state.refine
        ):
            return None
        return cls(state, policy)

    def take(self, pts_us: int, dts_us: int, duration_us: int, now_us: int | None) -> bool:
        """Take one non-key frame (raw stream times in µs, as `PacketMeta` has them); False,
        with nothing changed, if it is not plain."""
        off = self.offset_us
        pts = pts_us + off
        ts = dts_us + off
        delta = ts - self._last_ts
        if delta <= 0 or delta > self._jump_us:
            return False
        if self._cadence and delta >= 3 * self.frame_us // 2:
            return False
        if pts - self._start_pts >= self._max_us:
            return False
        end = pts + (duration_us if duration_us > 0 else delta)
        if end > self._end_pts:
            self._end_pts = end
        else:
            end = self._end_pts
        self._last_ts = ts
        self._last_now = now_us
        self._last_end = self._wall0 + end
        self.frame_us = delta
        self.taken += 1
        return True

    def fold(self) -> CutState:
        """The state after the frames taken: what `step` would have made of them."""
        base = self.base
        if not self.taken:
            return base
        seg = base.segment
        if seg is None or self._last_end is None:
            raise ValueError("a plain run needs an open segment")  # as checked at start
        if self._end_pts != seg.end_pts_us:
            seg = OpenSegment(seg.start_pts_us, self._end_pts, seg.flags, seg.start_us)
        return base.advanced(
            seg,
            self._last_ts,
            self._last_now,
            self._last_end,
            self.frame_us,
            base.last_key_pts_us,
            base.key_interval_us,
            base.sps,
        )
