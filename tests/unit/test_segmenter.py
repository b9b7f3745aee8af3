"""The segmenter's pure core: where segments are cut and what wall-clock time they cover."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.model import SegmentFlag
from edge_agent.segmenter import (
    US,
    Action,
    ClosedSegment,
    CutPolicy,
    CutState,
    GapSpan,
    PacketMeta,
    abandon,
    begin,
    finish,
    step,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
FRAME = 40_000  # 25 fps
POLICY = CutPolicy(target_us=2 * US, max_us=6 * US, forward_jump_us=1 * US)


def pkt(i: int, key: bool, *, base: int = 0, sps: bytes | None = None) -> PacketMeta:
    """Frame i of a 25 fps stream whose timestamps start at `base` µs."""
    t = base + i * FRAME
    return PacketMeta(pts_us=t, dts_us=t, duration_us=FRAME, is_key=key, sps=sps)


def gop_stream(frames: int, gop: int = 25, first: int = 0, base: int = 0) -> list[PacketMeta]:
    return [pkt(i, i % gop == 0, base=base) for i in range(first, first + frames)]


@dataclass
class Run:
    state: CutState
    actions: list[Action] = field(default_factory=list)
    closed: list[ClosedSegment] = field(default_factory=list)
    gaps: list[GapSpan] = field(default_factory=list)


def run(state: CutState, packets: list[PacketMeta], now: list[int] | None = None) -> Run:
    r = Run(state)
    for n, p in enumerate(packets):
        r.state, d = step(r.state, p, None if now is None else now[n], POLICY)
        r.actions.append(d.action)
        if d.closed:
            r.closed.append(d.closed)
        r.gaps.extend(d.gaps)
    return r


def close(r: Run, truncated: bool = False) -> Run:
    r.state, last, gaps = finish(r.state, truncated=truncated)
    if last:
        r.closed.append(last)
    r.gaps.extend(gaps)
    return r


def test_cuts_at_first_keyframe_after_target_and_tiles_time() -> None:
    r = close(run(begin(T0, live=False), gop_stream(150)))  # 6 s, keyframe each second
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [
        (0, 2 * US),
        (2 * US, 2 * US),
        (4 * US, 2 * US),
    ]
    assert r.actions.count(Action.CUT) == 2
    assert r.gaps == []
    assert all(c.flags == SegmentFlag.NONE for c in r.closed)


def test_a_keyframe_a_tick_or_two_early_still_cuts() -> None:
    """Timestamps that wobble by 1-2 ticks of 90 kHz put some keyframes at 1.99998 s of a 2 s
    target: the cut fires within half a frame of the target, so no segment doubles."""
    wobble = [11, 0, -11, 0]  # µs, per keyframe: every other segment is 22 µs short
    packets = [
        PacketMeta(
            i * FRAME + (wobble[i // 25 % 4] if i % 25 == 0 else 0), None, FRAME, i % 25 == 0
        )
        for i in range(250)
    ]
    r = close(run(begin(T0, live=False), packets))
    assert [round(c.duration_us / US, 3) for c in r.closed] == [2.0] * 5
    assert r.gaps == []


def test_a_keyframe_a_whole_frame_early_does_not_cut() -> None:
    """Half a frame is the tolerance, no more: a GOP one frame short of the target is not due."""
    packets = [pkt(i, i % 49 == 0) for i in range(150)]  # keyframes at 0, 1.96, 3.92, 5.88 s
    r = close(run(begin(T0, live=False), packets))
    assert [c.duration_us for c in r.closed] == [3_920_000, 1_960_000 + 120_000]


def test_leading_packets_before_a_keyframe_are_dropped() -> None:
    r = run(begin(T0, live=False), gop_stream(30, first=10))  # starts mid-GOP at frame 10
    assert r.actions[:15] == [Action.DROP] * 15
    assert r.actions[15] == Action.OPEN  # frame 25 is the first keyframe
    r = close(r)
    assert r.closed[0].start_us == T0 + 15 * FRAME  # anchor = first packet, key 15 frames later


def test_long_gop_makes_longer_segments_never_a_cut_on_a_non_keyframe() -> None:
    r = close(run(begin(T0, live=False), gop_stream(200, gop=75)))  # keyframe every 3 s
    assert [c.duration_us for c in r.closed] == [3 * US, 3 * US, 2 * US]


def test_forward_jump_in_a_file_leaves_a_gap_and_flags_discontinuity() -> None:
    packets = gop_stream(50) + gop_stream(50, base=10 * US)  # 8 s of timestamps missing
    r = close(run(begin(T0, live=False), packets))
    assert [c.start_us - T0 for c in r.closed] == [0, 10 * US]
    assert r.closed[1].flags == SegmentFlag.DISCONTINUITY
    assert r.gaps == [GapSpan(T0 + 2 * US, T0 + 10 * US, "timestamps jumped forwards by 8.040 s")]


def test_backward_jump_in_a_file_continues_at_the_previous_end() -> None:
    packets = gop_stream(50, base=5 * US) + gop_stream(50, base=0)
    r = close(run(begin(T0, live=False), packets))
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [(0, 2 * US), (2 * US, 2 * US)]
    assert r.closed[1].flags == SegmentFlag.DISCONTINUITY
    assert r.gaps == []


def test_backward_step_on_a_non_keyframe_is_a_rebase_not_a_cut() -> None:
    # FFmpeg re-bases RTP time on the first RTCP report: the video goes on, the clock moves.
    packets = gop_stream(51, base=2 * US) + [pkt(i, i % 25 == 0) for i in range(1, 75)]
    r = close(run(begin(T0, live=False), packets))
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [
        (0, 2 * US),
        (2 * US, 2 * US),
        (4 * US, 1 * US),
    ]
    assert r.gaps == [] and all(c.flags == SegmentFlag.NONE for c in r.closed)
    state, d = step(r.state, pkt(80, False), None, POLICY)
    assert d.offset_us == 2 * US + 51 * FRAME - FRAME  # later packets are shifted alike


def test_live_jump_while_packets_keep_arriving_is_a_rebase() -> None:
    packets = gop_stream(50) + gop_stream(75, base=500 * US)  # keyframe, +498 s, no pause
    now = [T0 + i * FRAME for i in range(125)]
    r = close(run(begin(T0, live=True), packets, now))
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [
        (0, 2 * US),
        (2 * US, 2 * US),
        (4 * US, 1 * US),
    ]
    assert r.gaps == [] and all(c.flags == SegmentFlag.NONE for c in r.closed)


def test_live_forward_jump_reanchors_on_arrival_time() -> None:
    packets = gop_stream(50) + gop_stream(25, base=100 * US)  # the camera's clock leapt
    now = [T0 + i * FRAME for i in range(50)] + [T0 + 5 * US + i * FRAME for i in range(25)]
    r = close(run(begin(T0, live=True), packets, now))
    assert [c.start_us - T0 for c in r.closed] == [0, 5 * US]
    assert r.gaps == [GapSpan(T0 + 2 * US, T0 + 5 * US, "timestamps jumped forwards by 98.040 s")]


def test_jump_on_a_non_keyframe_closes_and_waits_for_the_next_keyframe() -> None:
    first = gop_stream(40)  # 1.6 s
    after = [pkt(i, i % 25 == 10, base=10 * US) for i in range(30)]  # keyframe 10 frames in
    r = close(run(begin(T0, live=False), first + after))
    assert r.actions[40] == Action.CLOSE_DROP
    assert r.actions[41:50] == [Action.DROP] * 9
    assert r.actions[50] == Action.OPEN
    assert r.closed[0].duration_us == 40 * FRAME
    assert r.gaps[0].start_us == T0 + 40 * FRAME
    assert r.gaps[0].end_us == r.closed[1].start_us == T0 + 10 * US + 10 * FRAME


def test_new_sps_starts_a_discontinuity_segment_without_a_gap() -> None:
    packets = [pkt(i, i % 25 == 0, sps=b"\x67A" if i % 25 == 0 else None) for i in range(25)]
    packets += [pkt(i, i % 25 == 0, sps=b"\x67B" if i % 25 == 0 else None) for i in range(25, 50)]
    r = close(run(begin(T0, live=False), packets))
    assert [(c.start_us - T0, c.duration_us, c.flags) for c in r.closed] == [
        (0, 1 * US, SegmentFlag.NONE),
        (1 * US, 1 * US, SegmentFlag.DISCONTINUITY),
    ]
    assert r.gaps == []


def test_no_keyframe_for_max_closes_the_segment_and_reports_the_gap() -> None:
    packets = [pkt(i, i in (0, 200)) for i in range(225)]  # 8 s without a keyframe
    r = close(run(begin(T0, live=False), packets))
    assert r.closed[0].duration_us == 6 * US
    assert r.closed[1].start_us == T0 + 8 * US
    assert r.closed[1].flags == SegmentFlag.DISCONTINUITY
    assert r.gaps == [GapSpan(T0 + 6 * US, T0 + 8 * US, "no keyframe for 6.0 s")]


def test_a_lost_keyframe_ends_the_segment_and_the_broken_gop_is_a_gap() -> None:
    packets = [pkt(i, i % 25 == 0) for i in range(100) if i != 50]  # the IDR at 2 s never came
    r = close(run(begin(T0, live=False), packets))
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [(0, 2 * US), (3 * US, 1 * US)]
    assert r.actions[50] == Action.CLOSE_DROP
    assert r.gaps == [
        GapSpan(T0 + 2 * US, T0 + 3 * US, "broken GOP: a keyframe due was never received")
    ]
    assert r.closed[1].flags == SegmentFlag.DISCONTINUITY


def test_a_missing_frame_off_the_keyframe_cadence_is_not_a_broken_gop() -> None:
    packets = [pkt(i, i % 25 == 0) for i in range(100) if i not in (37, 60, 61)]
    r = close(run(begin(T0, live=False), packets))
    assert [(c.start_us - T0, c.duration_us) for c in r.closed] == [(0, 2 * US), (2 * US, 2 * US)]
    assert r.gaps == []


def test_prior_end_gives_a_gap_and_forbids_overlap() -> None:
    prior = T0 - 3 * US
    r = close(
        run(begin(T0, live=False, prior_end_us=prior, gap_reason="camera lost"), gop_stream(25))
    )
    assert r.gaps == [GapSpan(prior, T0, "camera lost")]
    overlap = begin(T0, live=False, prior_end_us=T0 + US // 2)
    r = close(run(overlap, gop_stream(25)))
    assert r.closed[0].start_us == T0 + US // 2  # moved, not overlapping
    assert r.closed[0].duration_us == 1 * US
    assert r.gaps == []


def test_live_anchor_is_refined_past_the_probe_burst() -> None:
    # The first second arrives at once 1 s late (FFmpeg probing), then packets flow live.
    truth = T0
    now = [truth + 1 * US + 10 * i for i in range(25)] + [
        truth + i * FRAME + 3000 for i in range(25, 100)
    ]
    r = close(
        run(begin(now[0], live=True, prior_end_us=T0 - US, gap_reason="lost"), gop_stream(100), now)
    )
    assert r.closed[0].start_us == truth + 3000  # not truth + 1 s
    assert r.gaps == [GapSpan(T0 - US, truth + 3000, "lost")]
    assert r.closed[1].start_us == r.closed[0].end_us


def test_first_live_segment_stays_open_until_a_long_backlog_drains() -> None:
    # 5 s of frames were queued while connecting; they arrive at once, then packets flow live.
    truth = T0
    now = [truth + 5 * US] * 125 + [truth + i * FRAME for i in range(125, 250)]
    r = close(run(begin(now[0], live=True), gop_stream(250), now))
    assert r.closed[0].start_us == truth  # not truth + 3 s (the anchor after 2 s of backlog)
    assert r.closed[0].duration_us == 6 * US  # held open through the backlog, cut when settled
    assert r.closed[1].start_us == r.closed[0].end_us


def test_live_anchor_never_before_the_connection_opened() -> None:
    now = [T0 + 2 * US] * 25 + [T0 + 2 * US + i * FRAME for i in range(25)]
    r = close(run(begin(now[0], live=True, earliest_us=T0 + US), gop_stream(50), now))
    assert r.closed[0].start_us == T0 + US


def test_finish_flags_truncated_and_is_empty_without_a_segment() -> None:
    r = close(run(begin(T0, live=False), gop_stream(30)), truncated=True)
    assert r.closed[-1].flags == SegmentFlag.TRUNCATED
    assert r.closed[-1].duration_us == 30 * FRAME
    _, closed, gaps = finish(begin(T0, live=False), truncated=True)
    assert closed is None and gaps == ()


def test_abandon_turns_the_segment_into_a_gap_at_the_next_keyframe() -> None:
    r = run(begin(T0, live=False), gop_stream(60))  # segment 2 s.. open
    r.state = abandon(r.state, "disk full")
    r = close(run(r.state, gop_stream(40, first=60)))
    assert r.gaps == [GapSpan(T0 + 2 * US, T0 + 3 * US, "disk full")]
    assert r.closed[-1].start_us == T0 + 3 * US
    assert r.closed[-1].flags & SegmentFlag.DISCONTINUITY


def test_skip_before_resumes_after_what_is_buffered() -> None:
    state = begin(T0, live=False, prior_end_us=T0 + 2 * US, skip_before_us=T0 + 2 * US)
    r = close(run(state, gop_stream(100)))
    assert r.actions[:50] == [Action.DROP] * 50
    assert r.closed[0].start_us == T0 + 2 * US
    assert r.gaps == []


def test_policy_for_seconds() -> None:
    p = CutPolicy.for_seconds(10)
    assert (p.target_us, p.max_us) == (10 * US, 60 * US)
    assert CutPolicy.for_seconds(30).max_us == 90 * US
    with pytest.raises(ValueError, match="positive"):
        CutPolicy.for_seconds(0)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.booleans(), min_size=1, max_size=300),
    target_s=st.integers(min_value=1, max_value=4),
)
def test_segments_start_on_keyframes_and_tile_the_stream(keys: list[bool], target_s: int) -> None:
    policy = CutPolicy(target_us=target_s * US, max_us=100 * US, forward_jump_us=US)
    state = begin(T0, live=False)
    closed: list[ClosedSegment] = []
    opened_on: list[bool] = []
    for i, key in enumerate(keys):
        state, d = step(state, pkt(i, key), None, policy)
        if d.closed:
            closed.append(d.closed)
        if d.action in (Action.OPEN, Action.CUT):
            opened_on.append(key)
        assert d.gaps == ()
    state, last, _ = finish(state, truncated=False)
    if last:
        closed.append(last)
    assert all(opened_on)
    assert len(closed) == len(opened_on)
    for a, b in zip(closed, closed[1:], strict=False):
        assert b.start_us == a.end_us
        assert a.duration_us >= policy.target_us
    if closed:
        first_key = keys.index(True)
        assert closed[0].start_us == T0 + first_key * FRAME
        assert closed[-1].end_us == T0 + len(keys) * FRAME


_STEPS = st.sampled_from([40_000, 40_000, 40_000, 39_999, 40_001, 80_000, 120_000, -40_000, 3 * US])


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            _STEPS,
            st.booleans(),  # keyframe
            st.sampled_from([None, b"sps-a", b"sps-b"]),
            st.integers(min_value=0, max_value=2),  # duration: given, zero, two frames
            st.integers(min_value=0, max_value=60_000),  # arrival jitter (live)
        ),
        min_size=1,
        max_size=200,
    ),
    live=st.booleans(),
    target_s=st.integers(min_value=1, max_value=3),
)
def test_fast_path_decides_exactly_as_the_full_rules(
    frames: list[tuple[int, bool, bytes | None, int, int]], live: bool, target_s: int
) -> None:
    """The per-packet fast path (the common WRITE) gives the same state and decision as the
    full rules on any stream: jumps, re-bases, lost frames, SPS changes, live jitter."""
    from edge_agent.segmenter.cut import _step

    policy = CutPolicy(target_us=target_s * US, max_us=3 * target_s * US, forward_jump_us=US)
    state = begin(T0, live=live, earliest_us=T0 - 50_000 if live else None)
    t, now = 0, T0
    for step_us, key, sps, dur_n, jitter in frames:
        t += step_us
        now += abs(step_us) if step_us < US else 40_000
        p = PacketMeta(
            pts_us=t, dts_us=t, duration_us=dur_n * FRAME, is_key=key, sps=sps if key else None
        )
        at = now + jitter if live else None
        fast_state, fast_decision = step(state, p, at, policy)
        full_state, full_decision = _step(state, p, at, policy)
        assert fast_state == full_state
        assert fast_decision == full_decision
        state = fast_state


def test_fast_path_is_taken_for_plain_frames() -> None:
    """A steady stream goes through the fast path nearly always (the point of having it)."""
    from edge_agent.segmenter.cut import _write_fast

    state = begin(T0, live=False)
    hits = 0
    for p in gop_stream(250):
        hits += _write_fast(state, p, None, POLICY) is not None
        state, _ = step(state, p, None, POLICY)
    assert hits >= 240


def test_advanced_state_carries_every_other_field() -> None:
    """`CutState.advanced` (the fast path's one-call replace) keeps every field it is not
    given, including any field added later."""
    import dataclasses

    from edge_agent.segmenter.state import CutState, OpenSegment

    state = CutState(anchor_hint_us=1, live=True)
    given = {
        "segment",
        "last_ts_us",
        "last_now_us",
        "last_end_us",
        "frame_us",
        "last_key_pts_us",
        "key_interval_us",
        "sps",
    }
    for n, f in enumerate(dataclasses.fields(CutState)):  # a distinct value in every field
        value = {bool: True, str: "x"}.get(type(getattr(state, f.name)), 1000 + n)
        state = dataclasses.replace(state, **{f.name: value})
    seg = OpenSegment(1, 2, SegmentFlag.NONE, 3)
    new = state.advanced(seg, 5, 6, 7, 8, 9, 10, b"s")
    assert new == dataclasses.replace(
        state,
        segment=seg,
        last_ts_us=5,
        last_now_us=6,
        last_end_us=7,
        frame_us=8,
        last_key_pts_us=9,
        key_interval_us=10,
        sps=b"s",
    )
    assert {f.name for f in dataclasses.fields(CutState)} - given  # the rest were compared
