"""Pure decisions of the camera emulator: specs, pacing, the GOP feed (no GStreamer, no I/O)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil_camsim import core
from vigil_camsim.core import CameraSpec, Feed, Schedule, SpecError


def spec(**kw: object) -> CameraSpec:
    base = CameraSpec(camera_id="1", label="CAM 1", gop_frames=25, loop_frames=50)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_defaults_are_1080p25_4mbit_2s_gop() -> None:
    s = core.make_specs(
        1,
        width=1920,
        height=1080,
        fps=25,
        bitrate_kbps=4000,
        gop_seconds=2.0,
        loop_seconds=4.0,
        label_prefix="CAM",
    )[0]
    assert (s.width, s.height, s.fps, s.bitrate_kbps, s.gop_frames, s.loop_frames) == (
        1920,
        1080,
        25,
        4000,
        50,
        100,
    )


def test_make_specs_gives_distinct_ids_and_labels() -> None:
    specs = core.make_specs(
        3,
        width=320,
        height=180,
        fps=25,
        bitrate_kbps=300,
        gop_seconds=1,
        loop_seconds=2,
        label_prefix="GATE",
    )
    assert [s.camera_id for s in specs] == ["1", "2", "3"]
    assert [s.label for s in specs] == ["GATE 1", "GATE 2", "GATE 3"]
    assert len({core.cache_key(s) for s in specs}) == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"width": 321}, "even"),
        ({"height": 8}, "resolution"),
        ({"width": 7680}, "resolution"),
        ({"fps": 0}, "fps"),
        ({"fps": 240}, "fps"),
        ({"bitrate_kbps": 10}, "bitrate"),
        ({"gop_frames": 0}, "GOP"),
        ({"loop_frames": 60}, "whole number"),
        ({"camera_id": "../etc"}, "camera id"),
        ({"label": "x" * 41}, "label"),
        ({"label": 'a"b'}, "label"),
    ],
)
def test_bad_specs_are_refused_with_the_setting_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        spec(**changes).validated()


def test_make_specs_refuses_bad_counts_and_durations() -> None:
    kw = dict(width=320, height=180, fps=25, bitrate_kbps=300, label_prefix="C")
    with pytest.raises(SpecError, match="cameras"):
        core.make_specs(0, gop_seconds=1, loop_seconds=2, **kw)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="gop"):
        core.make_specs(1, gop_seconds=-1, loop_seconds=2, **kw)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="loop"):
        core.make_specs(1, gop_seconds=1, loop_seconds=float("nan"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("gop", "fps", "seconds", "expected"),
    [
        (50, 25, 4.0, 100),
        (25, 25, 2.0, 50),
        (25, 25, 0.1, 50),
        (50, 25, 5.0, 150),
        (30, 30, 4, 120),
    ],
)
def test_loop_is_whole_gops_at_least_two(gop: int, fps: int, seconds: float, expected: int) -> None:
    assert core.loop_frames_for(gop, fps, seconds) == expected


def test_cache_key_depends_on_picture_settings_not_camera_id() -> None:
    a = spec()
    assert core.cache_key(a) == core.cache_key(dataclasses.replace(a, camera_id="9"))
    for change in ({"label": "CAM 2"}, {"width": 640}, {"bitrate_kbps": 999}, {"gop_frames": 50}):
        changed = dataclasses.replace(a, **change)
        assert core.cache_key(changed) != core.cache_key(a)


def test_at_resolution_validates() -> None:
    assert spec().at_resolution(640, 360).width == 640
    with pytest.raises(SpecError):
        spec().at_resolution(641, 360)


# --- pacing ---------------------------------------------------------------------------------


def test_tick_before_first_deadline_emits_nothing() -> None:
    n, s = core.plan_tick(Schedule(origin=10.0, fps=25), 9.99)
    assert n == 0 and s.emitted == 0


def test_ticks_on_time_emit_one_frame_each_without_drift() -> None:
    s = Schedule(origin=100.0, fps=25)
    for k in range(1000):
        n, s = core.plan_tick(s, 100.0 + k * 0.04 + 0.0005)
        assert n == 1
    assert s.next_deadline() == pytest.approx(100.0 + 1000 * 0.04)


def test_a_late_tick_catches_up_with_the_frames_due() -> None:
    s = Schedule(origin=0.0, fps=25, emitted=10)
    n, s2 = core.plan_tick(s, 0.40 + 0.085)  # frames 10, 11, 12 are due
    assert n == 3 and s2.emitted == 13 and s2.origin == 0.0


def test_a_starved_pusher_catches_up_without_losing_frames() -> None:
    s = Schedule(origin=0.0, fps=25, emitted=10)
    n, s2 = core.plan_tick(s, 0.40 + 1.5)  # 1.5 s late: frames 10..47 are due
    assert n == 38 and s2.origin == 0.0 and s2.emitted == 48


def test_a_long_stop_rebases_instead_of_bursting() -> None:
    s = Schedule(origin=0.0, fps=25, emitted=10)
    n, s2 = core.plan_tick(s, 5.0)
    assert n == 1 and s2.emitted == 11
    assert s2.due_at(10) == pytest.approx(5.0)  # the frame just sent was due now
    assert s2.next_deadline() == pytest.approx(5.04)


@given(st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200))
def test_scheduled_times_only_move_forward(gaps: list[float]) -> None:
    s, now, last = Schedule(origin=0.0, fps=25), 0.0, -1.0
    for gap in gaps:
        now += gap
        n, s = core.plan_tick(s, now)
        for k in range(s.emitted - n, s.emitted):
            due = s.due_at(k)
            assert due > last and due <= now + 1e-9
            last = due


# --- feed -----------------------------------------------------------------------------------


def run(feed: Feed, n: int) -> tuple[list[core.Emit], Feed]:
    out = []
    for _ in range(n):
        emit, feed = core.advance(feed)
        out.append(emit)
    return out, feed


def test_feed_loops_with_keyframes_every_gop() -> None:
    emits, feed = run(Feed(loop="a", loop_len=50, gop=25), 120)
    assert [e.index for e in emits[:52]] == list(range(50)) + [0, 1]
    assert [i for i, e in enumerate(emits) if e.keyframe] == [0, 25, 50, 75, 100]
    assert feed.pos == 120 % 50


def test_broken_gop_withholds_idrs_and_counts_down() -> None:
    feed = Feed(loop="a", loop_len=50, gop=25, pos=10, drop_idrs=2)
    emits, feed = run(feed, 80)
    withheld = [i for i, e in enumerate(emits) if e.index is None]
    assert withheld == [15, 40]  # the IDRs at loop positions 25 and 0
    sent_keys = [i for i, e in enumerate(emits) if e.keyframe and e.index is not None]
    assert sent_keys == [65]
    assert feed.drop_idrs == 0


def test_resolution_switch_waits_for_a_keyframe() -> None:
    feed = Feed(loop="small", loop_len=50, gop=25, pos=20, pending=("big", 100))
    emits, feed = run(feed, 10)
    assert [e.loop for e in emits] == ["small"] * 5 + ["big"] * 5
    assert emits[5].index == 0 and emits[5].keyframe
    assert feed.pending is None and feed.loop_len == 100


def test_switch_and_broken_gop_together_drop_the_new_loops_idr() -> None:
    feed = Feed(loop="s", loop_len=50, gop=25, pos=0, drop_idrs=1, pending=("b", 50))
    emit, feed = core.advance(feed)
    assert emit.loop == "b" and emit.index is None and feed.pos == 1


@given(
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=2, max_value=6),
    st.integers(min_value=0, max_value=500),
)
def test_keyframe_flag_matches_position(gop: int, gops: int, steps: int) -> None:
    feed = Feed(loop="a", loop_len=gop * gops, gop=gop)
    for _ in range(steps):
        emit, feed = core.advance(feed)
        assert emit.keyframe == (emit.index is not None and emit.index % gop == 0)


def test_gate_starts_clients_at_a_keyframe() -> None:
    assert core.gate(False, True) and core.gate(True, False) and core.gate(True, True)
    assert not core.gate(False, False)
