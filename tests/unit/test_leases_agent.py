"""The agent's lease decisions: checked leases, what to send next, inventory, holds (pure),
and the LeasedJobSource over an in-memory buffer and a manual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.scheduler.inventory import demand_from_inventory
from controller.scheduler.model import TrafficClass
from edge_agent.clock import ManualClock
from edge_agent.leases.inventory import (
    ARCHIVE,
    BACKFILL,
    build_inventory,
    classify,
    evict_at,
    held_ranges,
    hold_status,
    reconcile_holds,
)
from edge_agent.leases.lease import (
    AgentLease,
    LeasedSegment,
    LeaseRejected,
    WantedHold,
    next_segment,
    parse_lease,
)
from edge_agent.leases.source import FinishedLease, LeasedJobSource
from edge_agent.model import (
    BufferStats,
    EvictionRecord,
    Gap,
    Hold,
    SegmentFlag,
    SegmentInfo,
    SegmentState,
)
from edge_agent.uplink.ratelimit import TokenBucket
from protos.vigil.v1 import agent_control_pb2, common_pb2

S = 1_000_000
T0 = 1_767_225_600 * S
EVIDENCE = 1


def info(sid: str, start_s: int, cam: str = "cam1", state: str = "unsent") -> SegmentInfo:
    return SegmentInfo(
        sid, cam, T0 + start_s * S, 10 * S, 1000, "0" * 64, "", "ts", SegmentFlag.NONE,
        SegmentState(state), f"{sid}.ts",
    )  # fmt: skip


def lease_msg(**changes: object) -> agent_control_pb2.Lease:
    msg = agent_control_pb2.Lease(
        lease_id="L1", rate_bps=4000, expires_unix_us=T0 + 60 * S, holds_complete=True
    )
    msg.segments.add(segment_id="s1", camera_id="cam1", start_unix_us=T0, size_bytes=1000)
    msg.holds.add(
        hold_tag="vigil-job-j1",
        camera_id="cam1",
        range=common_pb2.TimeRange(start_unix_us=T0, end_unix_us=T0 + 60 * S),
    )
    for k, v in changes.items():
        setattr(msg, k, v)
    return msg


def test_a_lease_message_is_checked_whole() -> None:
    update = parse_lease(lease_msg())
    assert update.lease is not None and update.lease.usable(T0)
    assert not update.lease.usable(T0 + 60 * S)
    assert update.holds == (WantedHold("vigil-job-j1", "cam1", T0, T0 + 60 * S, EVIDENCE, ""),)
    none = parse_lease(lease_msg(lease_id="", holds_complete=False))
    assert none.lease is None and none.holds is None
    bad = lease_msg()
    bad.holds[0].hold_tag = "operator-hold"
    with pytest.raises(LeaseRejected, match="does not start with"):
        parse_lease(bad)
    twice = lease_msg()
    twice.segments.add(segment_id="s1", camera_id="cam1")
    with pytest.raises(LeaseRejected, match="twice"):
        parse_lease(twice)
    with pytest.raises(LeaseRejected, match="impossible"):
        parse_lease(lease_msg(rate_bps=-1))
    backwards = lease_msg()
    backwards.holds[0].range.end_unix_us = T0
    with pytest.raises(LeaseRejected, match="reversed"):
        parse_lease(backwards)
    with pytest.raises(LeaseRejected, match="lease id"):
        parse_lease(lease_msg(lease_id="x\n"))


def leased(*ids: str, cams: tuple[str, ...] = ()) -> AgentLease:
    cams = cams or tuple("cam1" for _ in ids)
    segs = tuple(LeasedSegment(i, c, 0, 1000, 5) for i, c in zip(ids, cams, strict=True))
    return AgentLease("L1", segs, 8000, T0 + 60 * S, 5, 1)


def test_next_segment_follows_the_lease_and_learns_on_the_way() -> None:
    states = {"a": "uploaded", "b": None, "c": "unsent", "d": "unsent"}
    pick = next_segment(leased("a", "b", "c", "d"), set(), set(), {}, {}, 0.0, states.get)
    assert pick.segment is not None and pick.segment.segment_id == "c"
    assert (pick.done, pick.failed, pick.last) == (("a",), ("b",), False)
    last = next_segment(leased("a", "b", "c", "d"), {"a", "c"}, {"b"}, {}, {}, 0.0, states.get)
    assert last.segment is not None and last.segment.segment_id == "d" and last.last
    parked = next_segment(leased("c", "d"), set(), set(), {}, {"c": 5.0}, 1.0, states.get)
    assert parked.failed == ("c",) and parked.segment.segment_id == "d"  # type: ignore[union-attr]
    busy = next_segment(
        leased("c", "d", cams=("cam1", "cam2")), set(), set(), {"cam1": "x"}, {}, 0, states.get
    )
    assert busy.segment.segment_id == "d" and not busy.last  # type: ignore[union-attr]
    flying = next_segment(leased("c"), set(), set(), {"cam1": "c"}, {}, 0.0, states.get)
    assert flying.segment is None and not flying.done and not flying.failed


def test_classes_of_unsent_segments() -> None:
    operator = Hold("h1", "cam1", T0, T0 + 20 * S, "case-7")
    wanted = [WantedHold("vigil-job-j", "cam2", T0, T0 + 20 * S, 3, "c")]
    held = held_ranges([operator], wanted)
    assert classify(info("a", 5), held, ()) == EVIDENCE
    assert classify(info("b", 5, cam="cam2"), held, ()) == 3
    assert classify(info("c", 30), held, {"cam1"}) == ARCHIVE
    assert classify(info("d", 30), held, ()) == BACKFILL


def test_inventory_totals_head_and_pressure_are_what_the_controller_accepts() -> None:
    unsent = [info(f"s{i}", i * 10) for i in range(6)] + [info("x", 0, cam="cam2")]
    held = [held_ranges([Hold("h", "cam1", T0 + 40 * S, T0 + 60 * S, "c")], [])][0]
    inv = build_inventory("dev1", T0, unsent, held, (), evict_at_us=T0 + 99 * S, max_head=4)
    entries = {(e.camera_id, int(e.traffic_class)): e for e in inv.backlog}
    assert entries[("cam1", EVIDENCE)].segments == 2
    assert entries[("cam1", EVIDENCE)].evict_at_unix_us == 0  # held: never evicted
    assert entries[("cam1", BACKFILL)].bytes == 4000
    assert entries[("cam1", BACKFILL)].evict_at_unix_us == T0 + 99 * S
    assert [r.segment_id for r in inv.unsent] == ["s4", "s5", "s0", "x"]
    assert all(r.duration_us == 10 * S for r in inv.unsent)
    demand = demand_from_inventory(inv, authenticated_device="dev1", now_us=T0)
    assert demand.backlog[TrafficClass.BACKFILL].segments == 5


def test_eviction_pressure() -> None:
    stats = BufferStats(900, 1000, 5, 500, 4, 400, 0, T0)
    assert evict_at(stats, 0, T0) == 0
    assert evict_at(stats, 8 * 500, T0) == T0 + 1 * S  # 100 free + 400 uploaded at 500 B/s
    roomy = BufferStats(900, 10**12, 5, 500, 4, 400, 0, T0)
    assert evict_at(roomy, 8 * 500, T0) == 0  # years away: no pressure


def test_hold_status_names_what_is_missing_and_why() -> None:
    hold = WantedHold("vigil-job-j", "cam1", T0, T0 + 100 * S, EVIDENCE, "c")
    segments = [info("s30", 30, state="uploaded"), info("s40", 40), info("s50", 50)]
    evicted = [EvictionRecord(7, "s10", "cam1", T0 + 10 * S, T0 + 20 * S, 1000, False, T0, True)]
    gaps = [Gap("cam1", T0 + 20 * S, T0 + 30 * S, "camera disconnected")]
    st = hold_status(hold, segments, evicted, {7: "quota"}, gaps, True, T0 + 1000 * S, 60 * S)
    assert (st.unsent_segments, st.unsent_bytes) == (2, 2000)
    assert st.recorded_until_unix_us == T0 + 60 * S
    found = [(m.range.start_unix_us - T0, m.range.end_unix_us - T0, m.reason) for m in st.missing]
    assert found == [
        (0, 10 * S, "not in the agent buffer"),
        (10 * S, 20 * S, "evicted from the agent buffer before upload (quota)"),
        (20 * S, 30 * S, "not recorded: camera disconnected"),
        (60 * S, 100 * S, "not in the agent buffer"),
    ]
    # The same range while the camera may still be recording its end: the tail is not judged.
    fresh = hold_status(hold, segments, [], {}, [], True, T0 + 70 * S, 60 * S)
    assert [m.range.end_unix_us - T0 for m in fresh.missing] == [30 * S]
    unknown = hold_status(hold, [], [], {}, [], False, T0, 60 * S)
    assert unknown.unknown_camera and unknown.missing[0].range.end_unix_us == T0 + 100 * S


def test_only_the_controllers_holds_are_ever_released() -> None:
    mine = Hold("h1", "cam1", 0, 10, "vigil-job-a")
    gone = Hold("h2", "cam1", 0, 10, "vigil-job-b")
    operator = Hold("h3", "cam1", 0, 10, "case-1")
    want = [
        WantedHold("vigil-job-a", "cam1", 0, 10, 1, ""),
        WantedHold("vigil-job-c", "cam2", 5, 9, 1, ""),
    ]
    pin, release = reconcile_holds(want, [mine, gone, operator])
    assert [w.tag for w in pin] == ["vigil-job-c"]
    assert release == ["h2"]


class MemoryBuffer:
    def __init__(self, *infos: SegmentInfo) -> None:
        self.infos = {i.segment_id: i for i in infos}

    def get(self, segment_id: str) -> SegmentInfo | None:
        return self.infos.get(segment_id)

    def unsent(self, limit: int = 100, camera_id: str | None = None) -> list[SegmentInfo]:
        return [i for i in self.infos.values() if i.state is SegmentState.UNSENT][:limit]

    def path_of(self, info: SegmentInfo) -> Path:
        return Path(info.filename)

    def mark_uploaded(self, segment_id: str) -> None:
        from dataclasses import replace

        self.infos[segment_id] = replace(self.infos[segment_id], state=SegmentState.UPLOADED)


def test_the_source_sends_only_leased_segments_and_reports_when_the_last_starts() -> None:
    clock = ManualClock(T0)
    buffer = MemoryBuffer(info("a", 0), info("b", 10), info("free", 20))
    bucket = TokenBucket(8000, 1000, clock)
    finished: list[FinishedLease] = []
    source = LeasedJobSource(buffer, bucket, clock, finished.append)
    assert source.select({}, {}, 0.0) is None  # no lease: nothing, ever
    source.set_lease(leased("a", "b"))
    assert bucket.rate_bps == 8000
    job = source.select({}, {}, 0.0)
    assert job is not None and (job.info.segment_id, job.lease_id) == ("a", "L1")
    buffer.mark_uploaded("a")
    source.set_lease(leased("a", "b"))  # the same lease again (a holds update): progress kept
    job = source.select({}, {}, 0.0)
    assert job is not None and job.info.segment_id == "b"
    assert finished == [FinishedLease("L1", ("a",), (), False)]  # the last one is on its way
    assert source.lease is None and source.select({}, {}, 0.0) is None


def test_an_expired_lease_is_reported_and_dropped() -> None:
    clock = ManualClock(T0)
    finished: list[FinishedLease] = []
    source = LeasedJobSource(MemoryBuffer(info("a", 0)), None, clock, finished.append)
    source.set_lease(leased("a"))
    clock.advance(61)
    assert source.select({}, {}, 0.0) is None
    assert finished == [FinishedLease("L1", (), (), True)]
    source.set_lease(leased("a"))
    source.clear()
    assert source.lease is None
