"""Limits per kind of call and per device on the controller's grpc.aio server, and the
follower's refusal (issue 12), on a real controller (mutual TLS, SQLite, local store, the
scheduler) with real gRPC clients:

- every upload slot held by stalled uploads: a new upload is refused RESOURCE_EXHAUSTED at
  once, while connected agents' inventories, lease streams, lease reports and resume queries
  still work (the synchronous server ran them all on one thread pool);
- the global lease-stream cap refuses a new device's stream RESOURCE_EXHAUSTED; a second
  stream of a device already connected replaces its first;
- on a follower every AgentControl call but Enroll/FetchConfig is refused
  FAILED_PRECONDITION with the leader's address in the trailing metadata, and open streams
  end that way once the leadership is lost.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from controller.assembly import Parts, build_controller
from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.leader import LEADER_METADATA_KEY
from controller.scheduler.grpc_service import NOT_LEADER, AgentControlServicer
from controller.scheduler.service import SchedulerService
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc, common_pb2, ingest_pb2
from tests.integration.controller_proc import (
    DeviceCreds,
    Segment,
    database_url,
    device_channel,
    ingest_stub,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
    status,
)
from tests.integration.test_agent_control_support import FAST
from tests.support import wait_until

CHUNK = 64 * 1024
BACKFILL = common_pb2.TRAFFIC_CLASS_BACKFILL


class Reader:
    """Reads a StreamLeases call in a thread, keeping every message and how it ended."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.messages: list[agent_control_pb2.Lease] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.messages.append(msg)
        except grpc.RpcError as exc:
            self.error = exc
        self.ended.set()

    def leases(self) -> list[str]:
        return [m.lease_id for m in self.messages if m.lease_id]

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(5)


def inventory(device: str, segment: str) -> agent_control_pb2.Inventory:
    inv = agent_control_pb2.Inventory(device_id=device, reported_unix_us=SystemClock().now_us())
    inv.unsent.add(
        segment_id=segment, camera_id="cam1", start_unix_us=1_000_000, size_bytes=1000,
        traffic_class=BACKFILL,
    )  # fmt: skip
    inv.backlog.add(camera_id="cam1", traffic_class=BACKFILL, bytes=1000, segments=1)
    return inv


@dataclass
class Site:
    data: Path
    devices: dict[str, DeviceCreds]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    devices = {}
    for name in ("up1", "up2", "up3", "agent-a", "agent-b", "agent-c"):
        register(data, name, [f"{name}-cam"])
        devices[name] = issue_device(data, name, tmp_path / name)
    return Site(data, devices)


@pytest.fixture
def channels() -> Iterator[list[grpc.Channel]]:
    opened: list[grpc.Channel] = []
    yield opened
    for channel in opened:
        channel.close()


def _control(site: Site, port: int, name: str, opened: list[grpc.Channel]) -> Any:
    channel = device_channel(port, site.devices[name])
    opened.append(channel)
    return agent_control_pb2_grpc.AgentControlStub(channel)


def _has_lease(reader: Reader) -> bool:
    return bool(reader.leases())


def _stalled(seg: Segment, release: threading.Event) -> Iterator[ingest_pb2.UploadRequest]:
    yield ingest_pb2.UploadRequest(header=seg.header())
    yield ingest_pb2.UploadRequest(chunk=seg.data[:CHUNK])
    release.wait(60)


def test_a_full_upload_pool_stalls_no_lease_call_of_connected_agents(
    site: Site, channels: list[grpc.Channel]
) -> None:
    config = make_config(
        site.data, 0,
        ingest={"max_concurrent_uploads": 4, "max_uploads_per_device": 2,
                "reserved_upload_slots": 0},
        grpc={"max_workers": 6},
    )  # fmt: skip
    ctl = build_controller(config, SystemClock(), Parts(scheduler=FAST))
    ctl.start()
    release = threading.Event()
    try:
        port = ctl.grpc_port
        held = []
        for name in ("up1", "up2"):
            channel = device_channel(port, site.devices[name])
            channels.append(channel)
            stub = ingest_stub(channel)
            for _ in range(2):
                seg = Segment.make(f"{name}-cam", size=2 * CHUNK)
                held.append(stub.Upload.future(_stalled(seg, release), timeout=60))
        wait_until(lambda: ctl.ingest.slots.in_use == 4, 15, "every upload slot held")
        # A new upload is refused at once, not queued behind the stalled ones.
        channel = device_channel(port, site.devices["up3"])
        channels.append(channel)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            ingest_stub(channel).Upload(Segment.make("up3-cam", size=CHUNK).requests(), timeout=10)
        assert status(refused.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - t0 < 5
        # Resume queries still answer.
        answer = ingest_stub(channel).QueryOffset(
            ingest_pb2.QueryOffsetRequest(segment_id="up3-cam-x", camera_id="up3-cam"), timeout=5
        )
        assert answer.offset == 0 and not answer.committed
        # Connected agents: inventory, lease stream, lease report, all while the pool is full.
        readers = []
        for name in ("agent-a", "agent-b"):
            stub = _control(site, port, name, channels)
            stub.ReportInventory(inventory(name, f"{name}-s1"), timeout=5)
            readers.append(
                (stub, Reader(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest())))
            )
        for stub, reader in readers:
            wait_until(functools.partial(_has_lease, reader), 15, "a lease while uploads are full")
            lease = next(m for m in reader.messages if m.lease_id)
            stub.FinishLease(
                agent_control_pb2.LeaseReport(
                    lease_id=lease.lease_id, done_segment_ids=[s.segment_id for s in lease.segments]
                ),
                timeout=5,
            )
            reader.close()
        assert ctl.ingest.slots.in_use == 4 and not any(f.done() for f in held)
    finally:
        release.set()
        ctl.stop(grace_s=1.0)


def test_the_stream_cap_refuses_new_devices_and_a_second_stream_replaces_the_first(
    site: Site, channels: list[grpc.Channel]
) -> None:
    config = make_config(site.data, 0, grpc={"max_lease_streams": 2})
    ctl = build_controller(config, SystemClock(), Parts(scheduler=FAST))
    ctl.start()
    try:
        port = ctl.grpc_port
        request = agent_control_pb2.LeaseStreamRequest()
        a = _control(site, port, "agent-a", channels)
        b = _control(site, port, "agent-b", channels)
        first_a, first_b = Reader(a.StreamLeases(request)), Reader(b.StreamLeases(request))
        wait_until(lambda: bool(first_a.messages and first_b.messages), 10, "two streams open")
        third = Reader(_control(site, port, "agent-c", channels).StreamLeases(request))
        assert third.ended.wait(10)
        assert third.error is not None
        assert third.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "lease streams" in (third.error.details() or "")
        # agent-a reconnects (a new channel, as after a network change): its new stream is
        # admitted although the cap is reached, and its first stream ends.
        again = Reader(_control(site, port, "agent-a", channels).StreamLeases(request))
        wait_until(lambda: bool(again.messages), 10, "the replacing stream")
        assert first_a.ended.wait(10)
        assert not first_b.ended.is_set() and not again.ended.is_set()
        a.ReportInventory(inventory("agent-a", "agent-a-s1"), timeout=5)
        wait_until(lambda: bool(again.leases()), 15, "a lease on the replacing stream")
        assert first_a.leases() == []
        for reader in (again, first_b):
            reader.close()
    finally:
        ctl.stop(grace_s=1.0)


class Switch:
    """A `Leadership` this test turns on and off (the contract in controller.leader)."""

    def __init__(self) -> None:
        self.leading = True

    def is_leader(self) -> bool:
        return self.leading

    def epoch(self) -> int:
        return 7

    def leader_address(self) -> str:
        return "10.0.0.2:7443"


def test_a_follower_refuses_agent_control_with_the_leader_address(
    site: Site, channels: list[grpc.Channel]
) -> None:
    engine = make_engine(database_url(site.data))
    catalog = Catalog(engine, SystemClock())
    scheduler = SchedulerService(catalog, SystemClock(), FAST)
    leadership = Switch()
    servicer = AgentControlServicer(scheduler, leadership=leadership)
    ctl = build_controller(
        make_config(site.data, 0),
        SystemClock(),
        services=[lambda s: agent_control_pb2_grpc.add_AgentControlServicer_to_server(servicer, s)],
    )
    ctl.start()
    scheduler.start()
    try:
        stub = _control(site, ctl.grpc_port, "agent-a", channels)
        stub.ReportInventory(inventory("agent-a", "agent-a-s1"), timeout=5)
        reader = Reader(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest()))
        wait_until(lambda: bool(reader.leases()), 15, "a lease from the leader")
        t0 = time.monotonic()
        leadership.leading = False
        # The open stream ends within about a second, naming the leader.
        assert reader.ended.wait(5)
        assert time.monotonic() - t0 < 3
        assert reader.error is not None
        assert reader.error.code() == grpc.StatusCode.FAILED_PRECONDITION
        ended: Any = reader.error
        assert dict(ended.trailing_metadata())[LEADER_METADATA_KEY] == "10.0.0.2:7443"
        calls = [
            lambda: stub.ReportInventory(inventory("agent-a", "agent-a-s2"), timeout=5),
            lambda: stub.FinishLease(agent_control_pb2.LeaseReport(lease_id="x"), timeout=5),
            lambda: next(iter(stub.StreamLeases(agent_control_pb2.LeaseStreamRequest()))),
        ]
        for call in calls:
            with pytest.raises(grpc.RpcError) as refused:
                call()
            err: Any = refused.value
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert err.details() == NOT_LEADER
            assert dict(err.trailing_metadata())[LEADER_METADATA_KEY] == "10.0.0.2:7443"
        # Enrollment and configuration are not the leader's business: not refused as such.
        with pytest.raises(grpc.RpcError) as enroll:
            stub.Enroll(agent_control_pb2.EnrollRequest(), timeout=5)
        assert enroll.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Leading again: the same agent is served.
        leadership.leading = True
        stub.ReportInventory(inventory("agent-a", "agent-a-s3"), timeout=5)
    finally:
        scheduler.stop()
        ctl.stop(grace_s=1.0)
        engine.dispose()
