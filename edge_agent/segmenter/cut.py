"""The cut rules: one step per packet, and the end of a connection (see the package doc)."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.model import SegmentFlag
from edge_agent.segmenter.signals import missed_keyframe, rebased, settled, shift, timestamp_jump
from edge_agent.segmenter.state import (
    JITTER_US,
    US,
    Action,
    ClosedSegment,
    CutPolicy,
    CutState,
    Decision,
    GapSpan,
    OpenSegment,
    PacketMeta,
    Timeline,
)


def begin(
    anchor_us: int,
    *,
    live: bool,
    prior_end_us: int | None = None,
    gap_reason: str = "",
    flags: SegmentFlag = SegmentFlag.NONE,
    skip_before_us: int | None = None,
    earliest_us: int | None = None,
) -> CutState:
    """State for a new connection or file.

    `prior_end_us` is where this camera's last segment (or recorded gap) ended: the first
    segment will not start before it, and time between the two is reported as a gap with
    `gap_reason`. `skip_before_us` drops packets already captured before a restart.
    `earliest_us` (live) is when the connection was opened: a lower bound of the anchor.
    """
    return CutState(
        anchor_hint_us=anchor_us,
        live=live,
        refine=live,
        earliest_us=earliest_us,
        next_flags=flags,
        floor_us=prior_end_us,
        gap_from_us=prior_end_us,
        gap_reason=gap_reason,
        skip_before_us=skip_before_us,
    )


def _place(
    state: CutState, tl: Timeline, start_pts_us: int
) -> tuple[Timeline, int, GapSpan | None]:
    """Fix a segment's wall-clock start: not before the floor; the gap since `gap_from_us`."""
    wall = tl.wall(start_pts_us)
    if state.floor_us is not None and wall < state.floor_us:
        tl = tl.shifted(state.floor_us - wall)
        wall = state.floor_us
    gap = None
    if state.gap_from_us is not None and wall > state.gap_from_us:
        gap = GapSpan(state.gap_from_us, wall, state.gap_reason or "no video")
    return tl, wall, gap


def _placed(state: CutState) -> CutState:
    """The pending floor and gap are settled once a segment's start is fixed."""
    return replace(state, floor_us=None, gap_from_us=None, gap_reason="", refine=False)


def _close(
    state: CutState, tl: Timeline, end_pts_us: int, extra: SegmentFlag
) -> tuple[CutState, Timeline, ClosedSegment, tuple[GapSpan, ...]]:
    """Close the open segment at `end_pts_us`, placing it first if it was provisional."""
    seg = state.segment
    if seg is None:
        raise ValueError("no open segment to close")
    gaps: tuple[GapSpan, ...] = ()
    start = seg.start_us
    if start is None:
        tl, start, gap = _place(state, tl, seg.start_pts_us)
        gaps = (gap,) if gap else ()
        state = _placed(state)
    end = max(tl.wall(end_pts_us), start)
    closed = ClosedSegment(start, end - start, seg.flags | extra)
    return replace(state, segment=None, timeline=tl, last_end_us=end), tl, closed, gaps


def step(
    state: CutState, pkt: PacketMeta, now_us: int | None, policy: CutPolicy
) -> tuple[CutState, Decision]:
    """Decide what to do with one packet. `now_us` is its arrival time (live sources only)."""
    fast = _write_fast(state, pkt, now_us, policy)
    if fast is not None:
        return fast
    return _step(state, pkt, now_us, policy)


_WRITE = Decision(Action.WRITE)


def _write_fast(
    state: CutState, pkt: PacketMeta, now_us: int | None, policy: CutPolicy
) -> tuple[CutState, Decision] | None:
    """`_step` for the common case, or None when it is not that case.

    Why: nearly every packet only extends the open segment (no jump, no cut, no lost keyframe,
    the anchor settled), and building the next state in one step instead of five keeps the
    per-packet cost of this core well below the remux it serves. Same result as `_step`, by
    construction and by test (test_segmenter: fast and full paths agree on random streams).
    """
    seg, tl, last = state.segment, state.timeline, state.last_ts_us
    if seg is None or tl is None or last is None:
        return None
    off = state.offset_us
    pts = pkt.pts_us + off
    if state.refine and now_us is not None:
        bound = now_us - (pts - tl.pts0_us)
        if state.earliest_us is not None:
            bound = max(bound, state.earliest_us)
        if bound < tl.anchor_us:
            return None  # the live anchor moves: the full rules
    ts = pkt.dts_us + off if pkt.dts_us is not None else pts
    delta = ts - last
    if delta <= 0 or delta > policy.forward_jump_us:
        return None  # a jump (or a re-base): the full rules
    is_key = pkt.is_key
    if not is_key and state.last_key_pts_us is not None and state.key_interval_us is not None:
        if delta >= 3 * state.frame_us // 2:
            return None  # a frame is missing: maybe a lost keyframe, the full rules decide
    frame_us = delta
    elapsed = pts - seg.start_pts_us
    if elapsed >= policy.max_us:
        return None
    if is_key and (
        (pkt.sps is not None and state.sps is not None and pkt.sps != state.sps)
        or elapsed >= policy.target_us - frame_us // 2
    ):
        return None  # maybe a cut
    dur = pkt.duration_us if pkt.duration_us > 0 else frame_us
    end_pts = pts + dur
    if end_pts > seg.end_pts_us:
        seg = OpenSegment(seg.start_pts_us, end_pts, seg.flags, seg.start_us)
    else:
        end_pts = seg.end_pts_us
    last_key, interval = state.last_key_pts_us, state.key_interval_us
    if is_key:
        last_key, interval = pts, (pts - last_key if last_key is not None else None)
    state = state.advanced(
        seg,
        ts,
        now_us,
        tl.wall(end_pts),
        frame_us,
        last_key,
        interval,
        pkt.sps if pkt.sps is not None else state.sps,
    )
    return state, (_WRITE if off == 0 else Decision(Action.WRITE, offset_us=off))


def _step(
    state: CutState, pkt: PacketMeta, now_us: int | None, policy: CutPolicy
) -> tuple[CutState, Decision]:
    """`step` by the full rules (every case)."""
    if state.offset_us:
        pkt = shift(pkt, state.offset_us)
    ts = pkt.dts_us if pkt.dts_us is not None else pkt.pts_us
    if timestamp_jump(state, ts, policy) is not None and rebased(state, pkt, now_us, policy):
        last = state.last_ts_us if state.last_ts_us is not None else ts
        by = last + state.frame_us - ts
        pkt = shift(pkt, by)
        state = replace(state, offset_us=state.offset_us + by)
    state, decision = _decide(state, pkt, now_us, policy)
    return replace(state, last_now_us=now_us), replace(decision, offset_us=state.offset_us)


def _decide(
    state: CutState, pkt: PacketMeta, now_us: int | None, policy: CutPolicy
) -> tuple[CutState, Decision]:
    ts = pkt.dts_us if pkt.dts_us is not None else pkt.pts_us
    tl = state.timeline or Timeline(state.anchor_hint_us, pkt.pts_us)
    frame_us = state.frame_us
    closed: ClosedSegment | None = None
    gaps: tuple[GapSpan, ...] = ()
    missed: int | None = None

    delta = timestamp_jump(state, ts, policy)
    if delta is not None:
        prev_end = state.last_end_us
        if state.segment is not None:
            state, tl, closed, gaps = _close(state, tl, state.segment.end_pts_us, SegmentFlag.NONE)
            prev_end = closed.end_us
        if prev_end is None:
            prev_end = state.floor_us if state.floor_us is not None else tl.wall(pkt.pts_us)
        if state.live and now_us is not None:
            new_wall = max(now_us, prev_end)
        elif delta > 0:
            new_wall = max(tl.wall(pkt.pts_us), prev_end)
        else:
            new_wall = prev_end
        tl = Timeline(new_wall, pkt.pts_us)
        direction = "backwards" if delta <= 0 else "forwards"
        why = f"timestamps jumped {direction} by {abs(delta) / US:.3f} s"
        state = replace(
            state,
            refine=False,
            next_flags=state.next_flags | SegmentFlag.DISCONTINUITY,
            floor_us=prev_end,
            gap_from_us=prev_end if state.gap_from_us is None else state.gap_from_us,
            gap_reason=state.gap_reason or why,
            last_key_pts_us=None,
            key_interval_us=None,
        )
    else:
        missed = missed_keyframe(state, pkt, ts)
        if state.last_ts_us is not None and ts > state.last_ts_us:
            frame_us = ts - state.last_ts_us
        if state.refine and now_us is not None:
            if state.timeline is None:
                state = replace(state, lowered_at_us=now_us)
            bound = now_us - (pkt.pts_us - tl.pts0_us)
            if state.earliest_us is not None:
                bound = max(bound, state.earliest_us)
            if bound < tl.anchor_us:
                if bound < tl.anchor_us - JITTER_US:
                    state = replace(state, lowered_at_us=now_us)
                tl = Timeline(bound, tl.pts0_us)

    dur = pkt.duration_us if pkt.duration_us > 0 else frame_us
    sps = pkt.sps if pkt.sps is not None else state.sps
    seg = state.segment
    state = replace(state, timeline=tl, last_ts_us=ts, frame_us=frame_us)
    if pkt.is_key:
        last_key = state.last_key_pts_us
        interval = pkt.pts_us - last_key if last_key is not None else None
        state = replace(state, last_key_pts_us=pkt.pts_us, key_interval_us=interval)

    if seg is None:
        wall = tl.wall(pkt.pts_us)
        if not pkt.is_key or (state.skip_before_us is not None and wall < state.skip_before_us):
            action = Action.CLOSE_DROP if closed is not None else Action.DROP
            return state, Decision(action, closed=closed, gaps=gaps)
        start: int | None = None
        if not state.refine:
            tl, start, gap = _place(state, tl, pkt.pts_us)
            gaps = (*gaps, gap) if gap else gaps
            state = _placed(replace(state, timeline=tl))
        opened = OpenSegment(pkt.pts_us, pkt.pts_us + dur, state.next_flags, start)
        state = replace(
            state,
            segment=opened,
            last_end_us=tl.wall(pkt.pts_us + dur),
            sps=sps,
            next_flags=SegmentFlag.NONE,
            skip_before_us=None,
        )
        action = Action.CUT if closed is not None else Action.OPEN
        return state, Decision(action, closed=closed, gaps=gaps)

    if missed is not None:
        state, tl, closed, gaps = _close(state, tl, seg.end_pts_us, SegmentFlag.NONE)
        state = replace(
            state,
            floor_us=closed.end_us,
            gap_from_us=closed.end_us,
            gap_reason="broken GOP: a keyframe due was never received",
            next_flags=SegmentFlag.DISCONTINUITY,
        )
        return state, Decision(Action.CLOSE_DROP, closed=closed, gaps=gaps)

    elapsed = pkt.pts_us - seg.start_pts_us
    if pkt.is_key:
        new_sps = pkt.sps is not None and state.sps is not None and pkt.sps != state.sps
        # Within half a frame of the target counts: timestamps wobble by a tick or two, and
        # a keyframe at 3.99998 s of a 4 s target must not push the cut a whole GOP later.
        due = elapsed >= policy.target_us - state.frame_us // 2 and (
            seg.start_us is not None or settled(state, now_us, policy) or elapsed >= policy.max_us
        )
        if new_sps or due:
            state, tl, closed, gaps = _close(state, tl, pkt.pts_us, SegmentFlag.NONE)
            flags = SegmentFlag.DISCONTINUITY if new_sps else SegmentFlag.NONE
            opened = OpenSegment(pkt.pts_us, pkt.pts_us + dur, flags, closed.end_us)
            state = replace(state, segment=opened, last_end_us=tl.wall(pkt.pts_us + dur), sps=sps)
            return state, Decision(Action.CUT, closed=closed, gaps=gaps)
    elif elapsed >= policy.max_us:
        state, tl, closed, gaps = _close(state, tl, seg.end_pts_us, SegmentFlag.NONE)
        state = replace(
            state,
            floor_us=closed.end_us,
            gap_from_us=closed.end_us,
            gap_reason=f"no keyframe for {elapsed / US:.1f} s",
            next_flags=SegmentFlag.DISCONTINUITY,
        )
        return state, Decision(Action.CLOSE_DROP, closed=closed, gaps=gaps)

    end_pts = max(seg.end_pts_us, pkt.pts_us + dur)
    state = replace(
        state,
        segment=replace(seg, end_pts_us=end_pts) if end_pts != seg.end_pts_us else seg,
        last_end_us=tl.wall(end_pts),
        sps=sps,
    )
    return state, Decision(Action.WRITE)


def finish(
    state: CutState, *, truncated: bool
) -> tuple[CutState, ClosedSegment | None, tuple[GapSpan, ...]]:
    """Close the open segment at the end of a connection or file.

    `truncated` (a disconnect, a stop, a damaged file) flags it TRUNCATED: it is kept, it
    plays, and the flag tells a viewer the recording stopped there rather than was cut.
    """
    seg, tl = state.segment, state.timeline
    if seg is None or tl is None:
        return replace(state, segment=None), None, ()
    extra = SegmentFlag.TRUNCATED if truncated else SegmentFlag.NONE
    state, _, closed, gaps = _close(state, tl, seg.end_pts_us, extra)
    return state, closed, gaps


def abandon(state: CutState, reason: str) -> CutState:
    """Give up the open segment (it could not be written): its time becomes part of a gap.

    The next keyframe opens a fresh DISCONTINUITY segment, and the gap it reports starts where
    the abandoned segment started (or where the time before it went missing), so the lost
    stretch is accounted for.
    """
    seg, tl = state.segment, state.timeline
    if seg is None or tl is None:
        return state
    start = seg.start_us
    if start is None:
        tl, start, _ = _place(state, tl, seg.start_pts_us)
    return replace(
        state,
        segment=None,
        timeline=tl,
        refine=False,
        floor_us=start,
        gap_from_us=start if state.gap_from_us is None else state.gap_from_us,
        gap_reason=state.gap_reason or reason,
        next_flags=state.next_flags | SegmentFlag.DISCONTINUITY,
    )
