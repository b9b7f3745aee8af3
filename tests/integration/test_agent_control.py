"""AgentControl against a real controller: mutual TLS identity, leases, reclaim, bad input.

The controller runs in this process (real gRPC server with mutual TLS, SQLite catalog,
local object store) with the scheduler wired as `serve` will wire it; agents are either the
real leased agent (buffer, uploader, lease client) or a raw stub speaking the protocol, for
the cases a well-behaved agent never produces.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from controller.catalog.history import HistoryCatalog
from controller.scheduler.model import TopologyError
from edge_agent.clock import SystemClock
from edge_agent.store import SegmentBuffer
from protos.vigil.v1 import agent_control_pb2, common_pb2
from tests.integration.controller_proc import issue_device, register
from tests.integration.test_agent_control_support import (
    FAST,
    LeasedAgent,
    control_stub,
    scheduled_controller,
)
from tests.integration.test_uplink_support import (
    QUOTA,
    Site,
    local_store,
    make_site,
    open_catalog,
    verify_delivery,
    write_segments,
)
from tests.support import wait_until

EVIDENCE = common_pb2.TRAFFIC_CLASS_EVIDENCE
BACKFILL = common_pb2.TRAFFIC_CLASS_BACKFILL


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = make_site(tmp_path)
    register(s.data_dir, "dev2", ["cam9"], site="village2")
    return s


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SegmentBuffer]:
    buf = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, SystemClock())
    yield buf
    buf.close()


def inventory(
    device: str, *segments: tuple[str, str, int], cls: int = BACKFILL
) -> agent_control_pb2.Inventory:
    """An inventory listing (segment id, camera, size) as unsent segments of one class."""
    inv = agent_control_pb2.Inventory(device_id=device, reported_unix_us=SystemClock().now_us())
    per_camera: dict[str, list[int]] = {}
    for i, (sid, cam, size) in enumerate(segments):
        per_camera.setdefault(cam, []).append(size)
        inv.unsent.add(
            segment_id=sid, camera_id=cam, start_unix_us=1_000_000 * (i + 1), size_bytes=size,
            traffic_class=cls,
        )  # fmt: skip
    for cam, sizes in per_camera.items():
        inv.backlog.add(camera_id=cam, traffic_class=cls, bytes=sum(sizes), segments=len(sizes))
    return inv


class StreamReader:
    """Reads a StreamLeases call in a thread, keeping every message."""

    def __init__(self, call: grpc.RpcContext) -> None:
        self.call = call
        self.messages: list[agent_control_pb2.Lease] = []
        self.error: grpc.RpcError | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for msg in self.call:  # type: ignore[attr-defined]
                self.messages.append(msg)
        except grpc.RpcError as exc:
            self.error = exc

    def lease_ids(self) -> list[str]:
        return [m.lease_id for m in self.messages if m.lease_id]

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(5)


def _segs(by_class: dict[int, list[int]]) -> list[int]:
    """Segments per class (leased: evidence to backfill, never 0) from class_sums."""
    assert all(1 <= c <= 5 for c in by_class)
    return [sum(h) for h in by_class.values()]


def test_leased_agent_uploads_everything_and_reports_its_leases(
    site: Site, buffer: SegmentBuffer
) -> None:
    infos = write_segments(buffer, "cam1", 5, size=60_000) + write_segments(
        buffer, "cam2", 3, size=60_000
    )
    with scheduled_controller(site.data_dir) as ctl, LeasedAgent(buffer, ctl.port, site.device):
        wait_until(lambda: buffer.stats().unsent_segments == 0, 30, "the agent to drain")
        wait_until(lambda: ctl.scheduler.counters["lease_reports"] >= 1, 10, "a FinishLease report")
        counters = dict(ctl.scheduler.counters)
        # The upkeep records each segment's class as leased (the KPIs' timeliness per class).
        history = HistoryCatalog(ctl.controller.catalog.engine, ctl.controller.clock)
        wait_until(
            lambda: (
                sum(n for h in history.class_sums(0, 2**62).values() for n in _segs(h))
                == len(infos)
            ),
            15,
            "every uploaded segment classified from its lease",
        )
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = verify_delivery(buffer, catalog, local_store(site.data_dir), ("cam1", "cam2"))
    finally:
        engine.dispose()
    assert len(rows) == len(infos)
    assert counters["leases_issued"] >= 1
    assert counters["refused"] == 0


def test_without_leases_the_agent_uploads_nothing(site: Site, buffer: SegmentBuffer) -> None:
    write_segments(buffer, "cam1", 3, size=30_000)
    with (
        scheduled_controller(site.data_dir, attach=False) as ctl,
        LeasedAgent(buffer, ctl.port, site.device) as agent,
    ):
        # The ingest port works, but AgentControl answers UNAVAILABLE: no lease, ever.
        wait_until(
            lambda: agent.leases.counters["inventory_errors"] >= 3, 10, "refused inventories"
        )
        assert "UNAVAILABLE" in agent.leases.last_error
        assert agent.source.lease is None
        assert buffer.stats().unsent_segments == 3
        assert agent.uploader.stats().committed == 0


def test_a_device_speaks_only_for_itself(site: Site) -> None:
    with scheduled_controller(site.data_dir) as ctl:
        stub = control_stub(ctl.port, site.device)
        with pytest.raises(grpc.RpcError) as forged:
            stub.ReportInventory(inventory("dev2", ("x1", "cam9", 1000)), timeout=5)
        assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as stream:
            next(iter(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest(device_id="dev2"))))
        assert stream.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ctl.scheduler.snapshot().devices == []


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda inv: setattr(inv.backlog[0], "bytes", -5), "negative"),
        (lambda inv: setattr(inv.backlog[0], "segments", 1), "lists more"),
        (lambda inv: setattr(inv.backlog[0], "bytes", 1 << 51), "exceeds"),
        (lambda inv: setattr(inv.backlog[0], "traffic_class", 9), "unknown traffic class"),
        (lambda inv: setattr(inv, "reported_unix_us", 1), "expired"),
        (lambda inv: inv.holds.add(hold_tag="not-ours", camera_id="cam1"), "not one the"),
    ],
)
def test_impossible_backlog_is_refused_and_the_plan_stays(
    site: Site, spoil: object, expected: str
) -> None:
    with scheduled_controller(site.data_dir) as ctl:
        stub = control_stub(ctl.port, site.device)
        good = inventory("dev1", ("a1", "cam1", 50_000), ("a2", "cam1", 50_000))
        stub.ReportInventory(good, timeout=5)
        reader = StreamReader(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest()))
        try:
            wait_until(lambda: bool(reader.lease_ids()), 10, "a lease for the good inventory")
            before = ctl.scheduler.snapshot()
            bad = inventory("dev1", ("a1", "cam1", 50_000), ("a2", "cam1", 50_000))
            spoil(bad)  # type: ignore[operator]
            with pytest.raises(grpc.RpcError) as refused:
                stub.ReportInventory(bad, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in (refused.value.details() or "")
            after = ctl.scheduler.snapshot()
            assert ctl.scheduler.counters["refused"] == 1
            assert [d.rates_bps for d in after.devices] == [d.rates_bps for d in before.devices]
            assert ctl.scheduler.lease("dev1") is not None
        finally:
            reader.close()


def test_disconnecting_voids_the_lease_and_an_unused_lease_is_reclaimed(site: Site) -> None:
    with scheduled_controller(site.data_dir) as ctl:
        stub = control_stub(ctl.port, site.device)
        reader = StreamReader(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest()))
        stub.ReportInventory(inventory("dev1", ("b1", "cam1", 80_000)), timeout=5)
        wait_until(lambda: bool(reader.lease_ids()), 10, "the first lease")
        first = reader.lease_ids()[0]
        assert [s.segment_id for s in reader.messages[-1].segments] == ["b1"]
        # Never uploaded: reclaimed at expiry (2 horizons + grace = 2.5 s), then re-issued.
        wait_until(lambda: ctl.scheduler.counters["leases_reclaimed"] >= 1, 10, "a reclaim")
        wait_until(lambda: len(set(reader.lease_ids())) >= 2, 10, "a fresh lease")
        assert reader.lease_ids()[-1] != first
        reader.close()
        wait_until(lambda: ctl.scheduler.lease("dev1") is None, 10, "the lease to be voided")
        assert "dev1" not in ctl.scheduler.connected()
        assert ctl.scheduler.counters["leases_forgotten"] >= 1


def test_lease_reports_about_foreign_or_unknown_leases_are_refused(
    site: Site, tmp_path: Path
) -> None:
    dev2 = issue_device(site.data_dir, "dev2", tmp_path / "dev2-certs")
    with scheduled_controller(site.data_dir) as ctl:
        stub1, stub2 = control_stub(ctl.port, site.device), control_stub(ctl.port, dev2)
        reader = StreamReader(stub2.StreamLeases(agent_control_pb2.LeaseStreamRequest()))
        stub2.ReportInventory(inventory("dev2", ("c1", "cam9", 20_000)), timeout=5)
        try:
            wait_until(lambda: bool(reader.lease_ids()), 10, "dev2's lease")
            theirs = reader.lease_ids()[0]
            with pytest.raises(grpc.RpcError) as foreign:
                stub1.FinishLease(agent_control_pb2.LeaseReport(lease_id=theirs), timeout=5)
            assert foreign.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as unknown:
                stub1.FinishLease(agent_control_pb2.LeaseReport(lease_id="nope"), timeout=5)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as bogus:
                stub2.FinishLease(
                    agent_control_pb2.LeaseReport(lease_id=theirs, done_segment_ids=["zz"]),
                    timeout=5,
                )
            assert bogus.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert ctl.scheduler.lease("dev2") is not None  # still dev2's, untouched
            stub2.FinishLease(
                agent_control_pb2.LeaseReport(lease_id=theirs, done_segment_ids=["c1"]), timeout=5
            )
            assert ctl.scheduler.counters["leases_finished"] == 1
            assert ctl.scheduler.counters["lease_reports"] == 1
        finally:
            reader.close()


GOOD_TOPOLOGY = """
[[links]]
id = "city"
capacity_bps = 1_000_000_000
[[links]]
id = "village"
parent = "city"
capacity_bps = 4_000_000
[[devices]]
id = "dev1"
link = "village"
"""


@pytest.mark.parametrize(
    "broken, message",
    [
        (GOOD_TOPOLOGY.replace('parent = "city"', 'parent = "village"'), "its own parent"),
        (
            GOOD_TOPOLOGY
            + '[[links]]\nid = "a"\nparent = "b"\ncapacity_bps = 1\n'
            + '[[links]]\nid = "b"\nparent = "a"\ncapacity_bps = 1\n',
            "cycle",
        ),
        (GOOD_TOPOLOGY.replace("4_000_000", "-4_000_000"), "capacity_bps must be a positive"),
        (GOOD_TOPOLOGY.replace("capacity_bps = 4", "capacity_bsp = 4"), "unknown key"),
    ],
)
def test_bad_topology_files_are_refused_and_the_plan_stays(
    site: Site, tmp_path: Path, broken: str, message: str
) -> None:
    path = tmp_path / "topology.toml"
    path.write_text(GOOD_TOPOLOGY)
    options = dataclasses.replace(FAST, topology_path=str(path))
    with scheduled_controller(site.data_dir, options) as ctl:
        stub = control_stub(ctl.port, site.device)
        reader = StreamReader(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest()))
        try:
            stub.ReportInventory(inventory("dev1", ("a1", "cam1", 4_000_000)), timeout=5)
            wait_until(lambda: bool(reader.lease_ids()), 10, "a lease")
            before = ctl.scheduler.topology
            rate = reader.messages[-1].rate_bps
            assert rate == 4_000_000  # the village link from the file
            path.write_text(broken)
            with pytest.raises(TopologyError, match=message):
                ctl.scheduler.reload_topology()
            assert ctl.scheduler.topology is before
            assert ctl.scheduler.lease("dev1").rate_bps == rate  # type: ignore[union-attr]
        finally:
            reader.close()
