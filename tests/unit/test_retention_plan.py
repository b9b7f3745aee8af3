"""The retention planner: pure decisions over plain data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.retention.plan import (
    DAY_US,
    HOUR_US,
    cutoff_us,
    is_held,
    key_hour_us,
    orphan_deletable,
    overlaps,
    plan_retention,
)

NOW = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
MIN_US = 60_000_000


@dataclass(frozen=True)
class Seg:
    segment_id: str
    camera_id: str
    start_us: int
    end_us: int


@dataclass(frozen=True)
class Hold:
    camera_id: str
    start_us: int
    end_us: int
    released_at_us: int | None = None


def seg(sid: str, camera: str, end_us: int, duration_us: int = MIN_US) -> Seg:
    return Seg(sid, camera, end_us - duration_us, end_us)


def test_default_policy_is_30_days_measured_from_the_segment_end():
    cutoff = NOW - 30 * DAY_US
    segments = [
        seg("at-cutoff", "c", cutoff),
        seg("just-inside", "c", cutoff + 1),
        seg("straddles", "c", cutoff + MIN_US // 2),
        seg("newest", "c", NOW),
    ]
    plan = plan_retention(segments, {}, [], NOW)
    assert plan.delete == ("at-cutoff",)
    assert plan.held == () and plan.anchors == ()


def test_per_camera_policy():
    segments = [
        seg("a-8d", "a", NOW - 8 * DAY_US),
        seg("a-6d", "a", NOW - 6 * DAY_US),
        seg("b-8d", "b", NOW - 8 * DAY_US),
        seg("b-31d", "b", NOW - 31 * DAY_US),
        seg("a-new", "a", NOW),
        seg("b-new", "b", NOW),
    ]
    plan = plan_retention(segments, {"a": 7}, [], NOW)
    assert sorted(plan.delete) == ["a-8d", "b-31d"]


def test_held_ranges_are_kept_until_released():
    old = [seg(f"s{i}", "c", NOW - (40 - i) * DAY_US) for i in range(5)]  # all expired
    newest = seg("newest", "c", NOW)
    hold = Hold("c", old[1].start_us, old[2].start_us + 1)  # touches s1 and s2
    plan = plan_retention([*old, newest], {}, [hold], NOW)
    assert plan.held == ("s1", "s2")
    assert plan.delete == ("s0", "s3", "s4")
    released = Hold(hold.camera_id, hold.start_us, hold.end_us, released_at_us=NOW - 1)
    plan = plan_retention([*old, newest], {}, [released], NOW)
    assert plan.delete == ("s0", "s1", "s2", "s3", "s4")


def test_hold_on_another_camera_or_adjacent_range_does_not_keep():
    s = seg("s", "c", NOW - 40 * DAY_US)
    other_camera = Hold("d", s.start_us, s.end_us)
    ends_at_start = Hold("c", s.start_us - MIN_US, s.start_us)  # half-open: no overlap
    starts_at_end = Hold("c", s.end_us, s.end_us + MIN_US)
    plan = plan_retention(
        [s, seg("n", "c", NOW)], {}, [other_camera, ends_at_start, starts_at_end], NOW
    )
    assert plan.delete == ("s",)


def test_newest_segment_of_a_camera_is_kept_as_chain_anchor():
    segments = [seg("old", "c", NOW - 50 * DAY_US), seg("older", "c", NOW - 60 * DAY_US)]
    plan = plan_retention(segments, {}, [], NOW)
    assert plan.delete == ("older",)
    assert plan.anchors == ("old",)


def test_future_segments_never_expire_and_duplicates_count_once():
    future = seg("future", "c", NOW + DAY_US)
    old = seg("old", "c", NOW - 40 * DAY_US)
    plan = plan_retention([old, old, future], {}, [], NOW)
    assert plan.delete == ("old",)


@pytest.mark.parametrize("days", [0, -1, True, 1.5])
def test_bad_policy_is_refused(days):
    with pytest.raises(ValueError, match="retention"):
        plan_retention([seg("s", "c", NOW)], {"c": days}, [], NOW)
    with pytest.raises(ValueError, match="retention"):
        cutoff_us(NOW, days)


def test_overlap_semantics():
    assert overlaps(0, 10, 9, 20)
    assert not overlaps(0, 10, 10, 20)
    assert overlaps(5, 5, 0, 10)  # zero-length segment inside
    assert not overlaps(10, 10, 0, 10)
    assert is_held(Seg("s", "c", 0, 10), [Hold("c", 5, 6)])
    assert not is_held(Seg("s", "c", 0, 10), [Hold("c", 5, 6, released_at_us=1)])


def test_key_hour_parsing():
    assert key_hour_us("wudu/v1/cam/2026/01/01/00/s.ts") == NOW
    assert key_hour_us("wudu/v1/cam/2026/01/01/05/s.ts") == NOW + 5 * HOUR_US
    assert key_hour_us("wudu/v1/cam/2026/13/01/00/s.ts") is None
    assert key_hour_us("wudu/v1/cam/x/01/01/00/s.ts") is None
    assert key_hour_us("s.ts") is None


def test_orphan_deletable_only_when_past_retention_and_not_held():
    now = NOW + 40 * DAY_US
    key = "wudu/v1/cam/2026/01/01/00/s.ts"  # filed at NOW
    assert orphan_deletable(key, "cam", 30, [], now)
    assert not orphan_deletable(key, "cam", 45, [], now)
    assert not orphan_deletable(
        key, "cam", 30, [Hold("cam", NOW + HOUR_US, NOW + 2 * HOUR_US)], now
    )
    assert orphan_deletable(
        key, "cam", 30, [Hold("cam", NOW + 2 * HOUR_US, NOW + 3 * HOUR_US)], now
    )
    assert not orphan_deletable("garbage", "cam", 30, [], now)
    # cutoff is NOW + 10 d; a key's span is its hour and the next
    assert orphan_deletable("wudu/v1/cam/2026/01/10/22/s.ts", "cam", 30, [], now)
    assert not orphan_deletable("wudu/v1/cam/2026/01/10/23/s.ts", "cam", 30, [], now)


spans = st.tuples(
    st.integers(min_value=0, max_value=60 * DAY_US), st.integers(min_value=0, max_value=DAY_US)
)


@settings(max_examples=200, deadline=None)
@given(
    segs=st.lists(st.tuples(st.sampled_from("ab"), spans), max_size=25),
    holds=st.lists(st.tuples(st.sampled_from("ab"), spans, st.booleans()), max_size=4),
    days=st.integers(min_value=1, max_value=40),
)
def test_plan_invariants(segs, holds, days):
    """Whatever the input: deletions are expired, unheld, not a camera's newest; every
    expired segment is accounted for exactly once."""
    now = 60 * DAY_US
    segments = [Seg(f"s{i}", cam, start, start + dur) for i, (cam, (start, dur)) in enumerate(segs)]
    hold_rows = [
        Hold(cam, start, start + dur + 1, None if active else 1)
        for cam, (start, dur), active in holds
    ]
    plan = plan_retention(segments, {"a": days}, hold_rows, now)
    by_id = {s.segment_id: s for s in segments}
    newest: dict[str, tuple[int, str]] = {}
    for s in segments:
        if s.camera_id not in newest or (s.start_us, s.segment_id) > newest[s.camera_id]:
            newest[s.camera_id] = (s.start_us, s.segment_id)
    for sid in plan.delete:
        s = by_id[sid]
        policy = days if s.camera_id == "a" else 30
        assert s.end_us <= now - policy * DAY_US
        assert not is_held(s, hold_rows)
        assert newest[s.camera_id][1] != sid
    expired = {
        s.segment_id
        for s in segments
        if s.end_us <= now - (days if s.camera_id == "a" else 30) * DAY_US
    }
    accounted = [*plan.delete, *plan.held, *plan.anchors]
    assert sorted(accounted) == sorted(expired)
