"""Runs of plain frames (edge_agent/segmenter/plain.py) fold into exactly the state that
stepping each frame through the full rules gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.segmenter import US, Action, CutPolicy, PacketMeta, begin, step
from edge_agent.segmenter.plain import PlainRun

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
FRAME = 40_000  # 25 fps
_STEPS = st.sampled_from(
    [40_000, 40_000, 40_000, 40_000, 39_999, 40_001, 60_000, 70_000, 80_000, -40_000, 0, 3 * US]
)


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            _STEPS,
            st.integers(min_value=0, max_value=40),  # 0: keyframe (one in 41)
            st.sampled_from([None, b"sps-a", b"sps-b"]),
            st.integers(min_value=0, max_value=2),  # duration: given, zero, two frames
            st.integers(min_value=0, max_value=60_000),  # arrival jitter (live)
            st.integers(min_value=0, max_value=2),  # pts ahead of dts by 0-2 frames (B-frames)
        ),
        min_size=1,
        max_size=300,
    ),
    live=st.booleans(),
    target_s=st.integers(min_value=1, max_value=3),
)
def test_a_run_of_plain_frames_folds_into_what_step_makes_of_them(
    frames: list[tuple[int, int, bytes | None, int, int, int]], live: bool, target_s: int
) -> None:
    """Frame by frame, beside the full rules: a frame the run takes is one `step` writes into
    the open segment with nothing else to do, and the folded run equals the stepped state;
    a frame it refuses changes nothing in it. Jumps, re-bases, lost frames, B-frame pts,
    the length limit, live anchors still refining: all fall to the full rules."""
    policy = CutPolicy(target_us=target_s * US, max_us=3 * target_s * US, forward_jump_us=US)
    reference = begin(T0, live=live, earliest_us=T0 - 50_000 if live else None)
    state, run = reference, None
    t, now, taken = 0, T0, 0
    for step_us, key_n, sps, dur_n, jitter, lead in frames:
        t += step_us
        now += abs(step_us) if step_us < US else 40_000
        key = key_n == 0
        p = PacketMeta(
            pts_us=t + lead * FRAME,
            dts_us=t,
            duration_us=dur_n * FRAME,
            is_key=key,
            sps=sps if key else None,
        )
        at = now + jitter if live else None
        reference, decision = step(reference, p, at, policy)
        if run is None:
            run = PlainRun.start(state, policy)
        if not key and run is not None:
            before = run.fold()
            if run.take(p.pts_us, t, p.duration_us, at):
                taken += 1
                assert decision.action is Action.WRITE and not decision.gaps
                assert decision.closed is None and decision.offset_us == run.offset_us
                assert run.frame_us == reference.frame_us
                assert run.fold() == reference
                continue
            assert run.fold() == before  # refused: nothing changed
        state = run.fold() if run is not None else state
        state, d = step(state, p, at, policy)  # the full rules, from the folded state
        assert (state, d) == (reference, decision)
        run = None
    final = run.fold() if run is not None else state
    assert final == reference


def test_a_steady_stream_is_nearly_all_plain_frames() -> None:
    """The point of it: a camera's frames between keyframes are taken as plain."""
    policy = CutPolicy(target_us=2 * US, max_us=6 * US, forward_jump_us=US)
    state = begin(T0, live=False)
    run, taken = None, 0
    for i in range(250):
        p = PacketMeta(i * FRAME, i * FRAME, FRAME, i % 25 == 0)
        if run is None:
            run = PlainRun.start(state, policy)
        if not p.is_key and run is not None and run.take(p.pts_us, p.dts_us or 0, FRAME, None):
            taken += 1
            continue
        state = run.fold() if run is not None else state
        state, _ = step(state, p, None, policy)
        run = None
    assert taken >= 225  # all but the keyframes and the first GOP's start


def test_a_lost_keyframe_and_the_length_limit_are_left_to_the_full_rules() -> None:
    """A frame missing where a keyframe was due, and a segment at its length limit: not plain
    (the full rules close the segment there)."""
    policy = CutPolicy(target_us=2 * US, max_us=6 * US, forward_jump_us=US)
    state = begin(T0, live=False)
    for i in range(75):  # three 1 s GOPs; frame 75, a keyframe, never comes
        state, _ = step(state, PacketMeta(i * FRAME, i * FRAME, FRAME, i % 25 == 0), None, policy)
    run = PlainRun.start(state, policy)
    assert run is not None
    assert not run.take(76 * FRAME, 76 * FRAME, FRAME, None)
    _, decision = step(state, PacketMeta(76 * FRAME, 76 * FRAME, FRAME, False), None, policy)
    assert decision.action is Action.CLOSE_DROP  # what the run left to the full rules

    state = begin(T0, live=False)  # one keyframe, then 6 s of frames: the limit
    for i in range(150):
        state, _ = step(state, PacketMeta(i * FRAME, i * FRAME, FRAME, i == 0), None, policy)
    run = PlainRun.start(state, policy)
    assert run is not None
    assert not run.take(150 * FRAME, 150 * FRAME, FRAME, None)
