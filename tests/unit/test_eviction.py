"""The buffer's pure cores, no I/O: the eviction plan (mostly), the chain check, crash repair."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.model import Hold, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.store.chain import ChainLink, verify_links
from edge_agent.store.eviction import eviction_key, is_held, overlaps, plan_eviction
from edge_agent.store.recovery import plan_recovery

UP, UN = SegmentState.UPLOADED, SegmentState.UNSENT


def seg(
    sid: str, start: int, size: int = 10, state: SegmentState = UN, cam: str = "a", dur: int = 10
) -> SegmentInfo:
    return SegmentInfo(
        segment_id=sid,
        camera_id=cam,
        start_us=start,
        duration_us=dur,
        size_bytes=size,
        sha256="",
        prev_sha256="",
        container="ts",
        flags=SegmentFlag.NONE,
        state=state,
        filename=f"{cam}/{sid}.ts",
    )


def hold(cam: str, start: int, end: int) -> Hold:
    return Hold(hold_id=f"h{start}", camera_id=cam, start_us=start, end_us=end, case_id="c")


# -- eviction: examples ---------------------------------------------------------------------


def test_within_quota_evicts_nothing() -> None:
    plan = plan_eviction([seg("x", 0)], [], used_bytes=10, quota_bytes=10)
    assert plan.evict_ids == () and plan.shortfall_bytes == 0 and plan.freed_bytes == 0


def test_uploaded_go_first_oldest_first_then_oldest_unsent() -> None:
    segments = [
        seg("unsent-old", 0),
        seg("up-new", 50, state=UP),
        seg("unsent-new", 60),
        seg("up-old", 10, state=UP),
    ]
    plan = plan_eviction(segments, [], used_bytes=40, quota_bytes=5)
    assert plan.evict_ids == ("up-old", "up-new", "unsent-old", "unsent-new")
    plan = plan_eviction(segments, [], used_bytes=40, quota_bytes=25)
    assert plan.evict_ids == ("up-old", "up-new")
    plan = plan_eviction(segments, [], used_bytes=40, quota_bytes=15)
    assert plan.evict_ids == ("up-old", "up-new", "unsent-old")
    assert plan.freed_bytes == 30 and plan.shortfall_bytes == 0


def test_held_segments_are_skipped_and_next_ones_taken() -> None:
    segments = [
        seg("a0", 0, state=UP),
        seg("a1", 10, state=UP),
        seg("a2", 20),
        seg("b0", 0, cam="b"),
    ]
    # hold on camera a covering a0 and a2 only; camera b's segment at the same time is free
    holds = [hold("a", 5, 8), hold("a", 25, 26)]
    plan = plan_eviction(segments, holds, used_bytes=40, quota_bytes=20)
    assert plan.evict_ids == ("a1", "b0")
    assert "a0" not in plan.evict_ids and "a2" not in plan.evict_ids


def test_shortfall_when_everything_left_is_held_or_kept() -> None:
    segments = [seg("a0", 0), seg("a1", 10), seg("new", 20)]
    holds = [hold("a", 0, 20)]
    plan = plan_eviction(segments, holds, used_bytes=30, quota_bytes=5, keep=frozenset({"new"}))
    assert plan.evict_ids == ()
    assert plan.shortfall_bytes == 25


def test_partial_shortfall_evicts_all_it_can() -> None:
    segments = [seg("a0", 0), seg("a1", 10), seg("a2", 20)]
    plan = plan_eviction(segments, [hold("a", 10, 11)], used_bytes=30, quota_bytes=0)
    assert plan.evict_ids == ("a0", "a2") and plan.shortfall_bytes == 10


def test_hold_boundaries_are_half_open() -> None:
    s = seg("s", 10, dur=10)  # [10, 20)
    assert not is_held(s, [hold("a", 20, 30)])  # touches at the end only
    assert not is_held(s, [hold("a", 0, 10)])  # ends where the segment starts
    assert is_held(s, [hold("a", 19, 30)]) and is_held(s, [hold("a", 0, 11)])
    assert not is_held(s, [hold("b", 0, 100)])  # another camera


def test_zero_length_segment_counts_as_its_start_instant() -> None:
    assert overlaps(10, 10, 5, 11) and overlaps(10, 10, 10, 11)
    assert not overlaps(10, 10, 11, 20) and not overlaps(10, 10, 0, 10)


def test_ties_break_by_camera_then_id() -> None:
    segments = [seg("b", 0, cam="b"), seg("a", 0, cam="a")]
    assert plan_eviction(segments, [], 20, 10).evict_ids == ("a",)


def test_negative_byte_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="byte counts"):
        plan_eviction([], [], used_bytes=-1, quota_bytes=0)
    with pytest.raises(ValueError, match="byte counts"):
        plan_eviction([], [], used_bytes=0, quota_bytes=-5)


# -- eviction: properties -------------------------------------------------------------------

segment_lists = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 500),
        st.integers(0, 40),
        st.integers(1, 1000),
        st.sampled_from([UP, UN]),
    ),
    max_size=40,
).map(
    lambda rows: [
        seg(f"s{i}", start, size=size, state=state, cam=cam, dur=dur)
        for i, (cam, start, dur, size, state) in enumerate(rows)
    ]
)
hold_lists = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 540), st.integers(1, 100)).map(
        lambda t: hold(t[0], t[1], t[1] + t[2])
    ),
    max_size=4,
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[SegmentInfo], list[Hold], int, int, frozenset[str]]:
    segments = draw(segment_lists)
    holds = draw(hold_lists)
    used = sum(s.size_bytes for s in segments)
    quota = draw(st.integers(0, used + 10))
    keep = frozenset(draw(st.sets(st.sampled_from([s.segment_id for s in segments] or ["-"]))))
    return segments, holds, used, quota, keep


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_property_never_evicts_held_or_kept(scenario) -> None:
    segments, holds, used, quota, keep = scenario
    plan = plan_eviction(segments, holds, used, quota, keep)
    by_id = {s.segment_id: s for s in segments}
    for sid in plan.evict_ids:
        assert sid not in keep
        assert not is_held(by_id[sid], holds)
    assert len(set(plan.evict_ids)) == len(plan.evict_ids)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_property_evicts_the_minimal_prefix_of_the_order(scenario) -> None:
    segments, holds, used, quota, keep = scenario
    plan = plan_eviction(segments, holds, used, quota, keep)
    eligible = [
        s
        for s in sorted(segments, key=eviction_key)
        if s.segment_id not in keep and not is_held(s, holds)
    ]
    prefix = [s.segment_id for s in eligible[: len(plan.evict_ids)]]
    assert list(plan.evict_ids) == prefix  # exactly a prefix, in order
    freed = sum(s.size_bytes for s in eligible[: len(plan.evict_ids)])
    assert plan.freed_bytes == freed
    excess = max(0, used - quota)
    if plan.shortfall_bytes == 0:
        assert freed >= excess  # quota met
        if plan.evict_ids:  # and one fewer would not have met it
            assert freed - eligible[len(plan.evict_ids) - 1].size_bytes < excess
    else:
        assert len(plan.evict_ids) == len(eligible)  # everything evictable was taken
        assert plan.shortfall_bytes == excess - freed > 0


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_property_uploaded_before_unsent_and_oldest_first(scenario) -> None:
    segments, holds, used, quota, keep = scenario
    plan = plan_eviction(segments, holds, used, quota, keep)
    by_id = {s.segment_id: s for s in segments}
    evicted = [by_id[sid] for sid in plan.evict_ids]
    if any(s.state is UN for s in evicted):
        spared_uploaded = [
            s
            for s in segments
            if s.state is UP
            and s.segment_id not in plan.evict_ids
            and s.segment_id not in keep
            and not is_held(s, holds)
        ]
        assert spared_uploaded == []
    for state in (UP, UN):
        starts = [s.start_us for s in evicted if s.state is state]
        assert starts == sorted(starts)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_property_input_order_does_not_matter(scenario, rnd: random.Random) -> None:
    segments, holds, used, quota, keep = scenario
    shuffled = list(segments)
    rnd.shuffle(shuffled)
    assert plan_eviction(shuffled, holds, used, quota, keep) == plan_eviction(
        segments, holds, used, quota, keep
    )


# -- chain check ------------------------------------------------------------------------------


def links(n: int, evicted: frozenset[int] = frozenset()) -> list[ChainLink]:
    out, prev = [], ""
    for seq in range(1, n + 1):
        sha = f"{seq:064x}"
        out.append(ChainLink(seq, f"s{seq}", sha, prev, seq in evicted))
        prev = sha
    return out


def test_intact_chain_with_evicted_links_has_no_problems() -> None:
    chain = links(5, evicted=frozenset({1, 2, 4}))
    assert verify_links("a", chain, 1, 5, chain[-1].sha256) == []
    assert verify_links("a", [], 1, 0, "") == []


def test_vanished_link_is_reported() -> None:
    chain = [link for link in links(5) if link.seq != 3]
    problems = verify_links("a", chain, 1, 5, f"{5:064x}")
    assert any("seq 3 is neither buffered nor recorded" in p for p in problems)


def test_broken_link_and_wrong_head_are_reported() -> None:
    chain = links(3)
    chain[2] = ChainLink(3, "s3", chain[2].sha256, "f" * 64, False)
    problems = verify_links("a", chain, 1, 3, "e" * 64)
    assert any("s3 points to" in p for p in problems)
    assert any("chain head" in p for p in problems)


def test_first_segment_must_have_no_previous_and_seqs_are_unique() -> None:
    chain = links(2)
    chain[0] = ChainLink(1, "s1", chain[0].sha256, "d" * 64, False)
    dup = ChainLink(2, "other", "c" * 64, chain[0].sha256, True)
    problems = verify_links("a", [*chain, dup], 1, 2, chain[1].sha256)
    assert any("first segment" in p for p in problems)
    assert any("claimed by both" in p for p in problems)


def test_anchor_after_pruning_trusts_its_first_link() -> None:
    chain = links(6)[3:]  # seqs 4..6 remain; 4's predecessor was pruned
    assert verify_links("a", chain, 4, 6, chain[-1].sha256) == []
    assert verify_links("a", chain, 1, 6, chain[-1].sha256) != []


# -- crash repair plan ------------------------------------------------------------------------


def test_recovery_plan_sorts_out_orphans_missing_and_damaged() -> None:
    indexed = {"a/1.ts": 10, "a/2.ts": 20, "a/3.ts": 30}
    on_disk = {"a/1.ts": 10, "a/2.ts": 21, "a/9.ts": 5}
    plan = plan_recovery(indexed, on_disk)
    assert plan.delete_files == ("a/9.ts",)
    assert plan.missing_rows == ("a/3.ts",)
    assert plan.damaged_rows == ("a/2.ts",)
    clean = plan_recovery(indexed, dict(indexed))
    assert clean.delete_files == clean.missing_rows == clean.damaged_rows == ()
