"""Demand: impossible backlog refused where it enters, from Python and from the wire."""

from __future__ import annotations

from typing import Any

import pytest

from controller.scheduler.inventory import MAX_HEAD_SEGMENTS, demand_from_inventory
from controller.scheduler.model import (
    MAX_BACKLOG_BYTES,
    ClassBacklog,
    DemandError,
    DeviceDemand,
    PendingSegment,
    TrafficClass,
)
from protos.vigil.v1 import agent_control_pb2 as pb
from protos.vigil.v1 import common_pb2

T = TrafficClass
NOW = 1_767_225_600_000_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bytes": -1, "segments": 0}, "bytes must be a non-negative"),
        ({"bytes": 10, "segments": 0}, "0 segments cannot hold 10 bytes"),
        ({"bytes": 0, "segments": 3}, "3 segments cannot hold 0 bytes"),
        ({"bytes": 2, "segments": 3}, "3 segments cannot fit in 2 bytes"),
        ({"bytes": MAX_BACKLOG_BYTES + 1, "segments": 1}, "exceeds"),
        ({"bytes": 10, "segments": 1, "due_bytes": 11, "deadline_us": 5}, "due_bytes 11 exceeds"),
        ({"bytes": 10, "segments": 1, "due_bytes": 5}, "without a deadline"),
        ({"bytes": 10, "segments": 1, "arrival_bps": -1}, "arrival_bps"),
        ({"bytes": 1.5, "segments": 1}, "non-negative integer"),
    ],
)
def test_impossible_class_backlog(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DemandError, match=message):
        ClassBacklog(**kwargs)


def seg(sid: str, cls: TrafficClass = T.BACKFILL, size: int = 10) -> PendingSegment:
    return PendingSegment(sid, "cam", cls, 1, size)


def test_listed_segments_must_fit_the_reported_backlog() -> None:
    ok = DeviceDemand("d", {T.BACKFILL: ClassBacklog(20, 2)}, (seg("a"), seg("b")))
    assert len(ok.head) == 2
    with pytest.raises(DemandError, match="listed twice"):
        DeviceDemand("d", {T.BACKFILL: ClassBacklog(20, 2)}, (seg("a"), seg("a")))
    with pytest.raises(DemandError, match="lists 2 backfill segments of 20 bytes"):
        DeviceDemand("d", {T.BACKFILL: ClassBacklog(15, 2)}, (seg("a"), seg("b")))
    with pytest.raises(DemandError, match="lists 2 backfill segments"):
        DeviceDemand("d", {T.BACKFILL: ClassBacklog(100, 1)}, (seg("a"), seg("b")))
    with pytest.raises(DemandError, match="reports no evidence backlog"):
        DeviceDemand("d", {T.BACKFILL: ClassBacklog(100, 1)}, (seg("a", T.EVIDENCE),))
    with pytest.raises(DemandError, match="keys must be TrafficClass"):
        DeviceDemand("d", {5: ClassBacklog(1, 1)})  # type: ignore[dict-item]
    with pytest.raises(DemandError, match="size_bytes must be positive"):
        seg("a", size=0)
    with pytest.raises(DemandError, match="device id"):
        DeviceDemand("", {})


def entry(cam: str, cls: Any, size: int, n: int, evict: int = 0) -> pb.BacklogEntry:
    return pb.BacklogEntry(
        camera_id=cam,
        traffic_class=cls,
        bytes=size,
        segments=n,
        oldest_start_unix_us=NOW - 10**9,
        evict_at_unix_us=evict,
    )


def ref(sid: str, cam: str, size: int, cls: Any = 0) -> pb.SegmentRef:
    return pb.SegmentRef(
        segment_id=sid,
        camera_id=cam,
        start_unix_us=NOW - 10**9,
        size_bytes=size,
        traffic_class=cls,
    )


def inventory(**kw: object) -> pb.Inventory:
    base: dict[str, object] = {
        "device_id": "nvr-1",
        "reported_unix_us": NOW,
        "backlog": [
            entry("c1", common_pb2.TRAFFIC_CLASS_BACKFILL, 1000, 10, evict=NOW + 60_000_000),
            entry("c1", common_pb2.TRAFFIC_CLASS_EVIDENCE, 300, 3),
            entry("c2", common_pb2.TRAFFIC_CLASS_BACKFILL, 500, 5, evict=NOW + 30_000_000),
        ],
        "unsent": [
            ref("s1", "c1", 100, common_pb2.TRAFFIC_CLASS_EVIDENCE),
            ref("s2", "c2", 100),  # one class for c2: inferred
        ],
    }
    base.update(kw)
    return pb.Inventory(**base)  # type: ignore[arg-type]


def test_a_good_inventory_becomes_demand() -> None:
    d = demand_from_inventory(
        inventory(),
        authenticated_device="nvr-1",
        now_us=NOW,
        evidence_deadlines={"c1": NOW + 20_000_000},
    )
    assert d.device_id == "nvr-1"
    assert d.backlog[T.BACKFILL] == ClassBacklog(1500, 15, NOW - 10**9, NOW + 30_000_000, 500, 0)
    assert d.backlog[T.EVIDENCE].deadline_us == NOW + 20_000_000
    assert d.backlog[T.EVIDENCE].due_bytes == 300
    by_id = {s.segment_id: s for s in d.head}
    assert by_id["s1"].traffic_class is T.EVIDENCE and by_id["s1"].deadline_us == NOW + 20_000_000
    assert by_id["s2"].traffic_class is T.BACKFILL and by_id["s2"].deadline_us == NOW + 30_000_000


@pytest.mark.parametrize(
    ("kw", "auth", "message"),
    [
        ({}, "nvr-2", "a device reports only for itself"),
        ({"reported_unix_us": NOW - 10**9}, "nvr-1", "expired"),
        ({"reported_unix_us": NOW + 10**9}, "nvr-1", "in the future"),
        ({"backlog": [entry("c1", 9, 10, 1)]}, "nvr-1", "unknown traffic class 9"),
        ({"backlog": [entry("c1", 0, 10, 1)]}, "nvr-1", "unknown traffic class 0"),
        (
            {"backlog": [entry("c1", 5, 10, 1), entry("c1", 5, 10, 1)], "unsent": []},
            "nvr-1",
            "reported twice",
        ),
        ({"backlog": [entry("c1", 5, -10, 1)], "unsent": []}, "nvr-1", "negative"),
        ({"backlog": [entry("c1", 5, 10, 20)], "unsent": []}, "nvr-1", "cannot fit"),
        ({"unsent": [ref("s", "c9", 10, 5)]}, "nvr-1", "camera 'c9' has no backfill backlog"),
        ({"unsent": [ref("s", "c1", 10)]}, "nvr-1", "no class given and camera has 2"),
        ({"unsent": [ref("s", "c2", 600, 5)]}, "nvr-1", "more backfill segments"),
        ({"unsent": [ref("s", "c2", 0, 5)]}, "nvr-1", "size_bytes must be positive"),
        (
            {"unsent": [ref(f"s{i}", "c2", 1, 5) for i in range(MAX_HEAD_SEGMENTS + 1)]},
            "nvr-1",
            "oversize",
        ),
        ({"device_id": ""}, "", "device id"),
    ],
)
def test_bad_inventories_are_refused_with_the_reason(
    kw: dict[str, object], auth: str, message: str
) -> None:
    with pytest.raises(DemandError, match=message):
        demand_from_inventory(inventory(**kw), authenticated_device=auth, now_us=NOW)
