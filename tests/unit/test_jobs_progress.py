"""A job's progress from cloud, agent report and listed segments (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.jobs.model import SEG_GONE, SEG_PENDING, SEG_UPLOADED, SegmentState
from controller.jobs.progress import (
    CameraOutcome,
    HoldReport,
    Missing,
    Stored,
    camera_outcome,
    eta_us,
)
from vigil_common.spans import clip, covered, merge, subtract

S = 1_000_000
spans = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 1000)).map(lambda t: (min(t), max(t))),
    max_size=8,
)


def points(ss: list[tuple[int, int]]) -> set[int]:
    return {x for s, e in ss for x in range(s, e)}


@given(spans, spans)
def test_subtract_removes_exactly_the_covered_points(a: list, b: list) -> None:  # type: ignore[type-arg]
    assert points(subtract(a, b)) == points(a) - points(b)
    assert points(merge(a)) == points(a)
    out = merge(a)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(out, out[1:], strict=False))


def test_merge_with_tolerance_and_covered() -> None:
    assert merge([(0, 10), (11, 20)], tolerance_us=1) == [(0, 20)]
    assert merge([(0, 10), (12, 20)], tolerance_us=1) == [(0, 10), (12, 20)]
    assert covered([(0, 10), (10, 20)], 2, 18)
    assert not covered([(0, 10), (12, 20)], 2, 18)
    assert covered([(0, 10), (12, 20)], 2, 18, tolerance_us=2)
    assert covered([], 5, 5)
    assert clip([(0, 10), (20, 30)], 5, 25) == [(5, 10), (20, 25)]


def seg(sid: str, start_s: int, state: str = SEG_PENDING, size: int = 100) -> SegmentState:
    return SegmentState(sid, "cam1", start_s * S, 10 * S, size, state)


def outcome(
    stored: list[Stored], report: HoldReport | None, pending: tuple[SegmentState, ...] = ()
) -> CameraOutcome:
    return camera_outcome("cam1", "dev1", 0, 100 * S, stored, report, list(pending), True)


def stored(start_s: int, sid: str = "", size: int = 100) -> Stored:
    return Stored(sid or f"s{start_s}", start_s * S, 10 * S, size)


def test_nothing_known_yet_waits_for_the_device() -> None:
    out = outcome([], None)
    assert not out.status.complete
    assert "waiting for device dev1 (connected)" in out.status.waiting


def test_everything_already_in_the_cloud_needs_no_report() -> None:
    out = outcome([stored(t) for t in range(0, 100, 10)], None)
    assert out.status.complete
    assert (out.bytes_done, out.segments_done, out.bytes_pending) == (1000, 10, 0)
    assert {s.state for s in out.segments} == {SEG_UPLOADED}


def test_unsent_segments_on_the_agent_keep_it_open() -> None:
    report = HoldReport(unsent_segments=3, unsent_bytes=300, recorded_until_us=200 * S)
    out = outcome([stored(0)], report, (seg("p1", 10), seg("p2", 20)))
    assert not out.status.complete
    assert "3 segment(s), 300 bytes still on device dev1" in out.status.waiting
    assert (out.bytes_pending, out.segments_pending) == (300, 3)  # the agent's counts win
    assert {s.segment_id: s.state for s in out.segments} == {
        "s0": SEG_UPLOADED, "p1": SEG_PENDING, "p2": SEG_PENDING
    }  # fmt: skip


def test_gone_is_what_the_agent_lacks_minus_what_the_cloud_has() -> None:
    report = HoldReport(
        0, 0, 200 * S, (Missing(0, 40 * S, "evicted (quota)"), Missing(90 * S, 100 * S, "gap"))
    )
    cloud = [stored(t) for t in range(20, 90, 10)]  # 20..90 s stored, 0..20 really gone
    out = outcome(cloud, report, (seg("p0", 0), seg("p10", 10)))
    assert out.status.complete
    assert [(g.start_us, g.end_us, g.reason) for g in out.gone] == [
        (0, 20 * S, "evicted (quota)"),
        (90 * S, 100 * S, "gap"),
    ]
    states = {s.segment_id: s.state for s in out.segments}
    assert states["p0"] == states["p10"] == SEG_GONE


def test_a_camera_still_recording_the_range_keeps_it_open() -> None:
    report = HoldReport(0, 0, recorded_until_us=60 * S)
    out = outcome([stored(t) for t in range(0, 60, 10)], report)
    assert not out.status.complete
    assert "still recording" in out.status.waiting
    ended = HoldReport(0, 0, 60 * S, (Missing(60 * S, 100 * S, "not recorded: camera lost"),))
    assert outcome([stored(t) for t in range(0, 60, 10)], ended).status.complete


def test_a_camera_the_agent_does_not_have() -> None:
    report = HoldReport(0, 0, 0, (Missing(0, 100 * S, "camera is not configured"),), True)
    out = outcome([], report)
    assert out.status.complete
    assert [(g.start_us, g.end_us) for g in out.gone] == [(0, 100 * S)]


def test_eta_is_the_slowest_device() -> None:
    now = 1000 * S
    assert eta_us({"a": 1_000_000, "b": 500_000}, {"a": 8_000_000, "b": 1_000_000}, now) == (
        now + 4 * S
    )
    assert eta_us({"a": 100}, {}, now) == 0  # no rate: unknown
    assert eta_us({"a": 0}, {}, now) == now
