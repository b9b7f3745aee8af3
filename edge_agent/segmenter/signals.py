"""What the timestamps and arrival times say: jumps, re-based clocks, lost keyframes, a settled
live anchor. Pure predicates over the segmenter state (see the package doc for the rules)."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.segmenter.state import CutPolicy, CutState, PacketMeta


def settled(state: CutState, now_us: int | None, policy: CutPolicy) -> bool:
    """Whether a live anchor stopped moving: packets have arrived on time for a while, so any
    backlog is drained and the first segment may close and fix its start."""
    if state.lowered_at_us is None or now_us is None:
        return True
    return now_us - state.lowered_at_us >= policy.settle_us


def timestamp_jump(state: CutState, ts_us: int, policy: CutPolicy) -> int | None:
    """The timestamp step if it is a discontinuity, else None."""
    if state.last_ts_us is None:
        return None
    delta = ts_us - state.last_ts_us
    if delta <= 0 or delta > policy.forward_jump_us:
        return delta
    return None


def missed_keyframe(state: CutState, pkt: PacketMeta, ts_us: int) -> int | None:
    """The pts of a keyframe that was due but never came (a broken GOP), else None.

    A frame is missing (this step is 1.5 frames or more) exactly where the GOP cadence put the
    next keyframe: the frames that follow reference a frame we never got and will not decode
    until the next keyframe. Requiring both keeps cameras with a variable frame rate or an
    adaptive GOP from tripping it.
    """
    last, frame = state.last_ts_us, state.frame_us
    if pkt.is_key or last is None or state.last_key_pts_us is None:
        return None
    if state.key_interval_us is None or ts_us - last < 3 * frame // 2:
        return None
    due = state.last_key_pts_us + state.key_interval_us
    if last + frame // 2 < due <= ts_us - frame // 2:
        return due
    return None


def shift(pkt: PacketMeta, by_us: int) -> PacketMeta:
    dts = None if pkt.dts_us is None else pkt.dts_us + by_us
    return replace(pkt, pts_us=pkt.pts_us + by_us, dts_us=dts)


def rebased(state: CutState, pkt: PacketMeta, now_us: int | None, policy: CutPolicy) -> bool:
    """Whether a timestamp jump is only the stream's clock being re-based, the video going on.

    Live: packets kept arriving without a pause, so no time is missing, whatever the
    timestamps say (FFmpeg re-bases RTP time when the first RTCP report arrives, for one).
    Any source: timestamps went back on a frame that is not a keyframe: that frame builds on
    the ones before it, so the video is continuous (an encoder restart begins with a keyframe).
    """
    if state.live and now_us is not None and state.last_now_us is not None:
        if now_us - state.last_now_us <= policy.forward_jump_us:
            return True
    ts = pkt.dts_us if pkt.dts_us is not None else pkt.pts_us
    return not pkt.is_key and state.last_ts_us is not None and ts <= state.last_ts_us
