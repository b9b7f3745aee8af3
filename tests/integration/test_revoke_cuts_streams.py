"""Revoking a device ends its open gRPC calls, not only its new ones (issue 16).

A real controller (scheduler wired, mutual TLS, revocation guard) and a real leased agent
(LeaseClient keeping StreamLeases open); beside it the same device holds a live feed and an
upload that has not finished. Retiring the device cuts all three with UNAUTHENTICATED within
a revocation refresh, its reconnects are refused, and another device's stream stays open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from controller.assembly import Parts, build_controller
from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.enrollment.operations import Operations
from controller.enrollment.store import EnrollmentStore
from edge_agent.clock import SystemClock as AgentClock
from edge_agent.store import SegmentBuffer
from protos.vigil.v1 import agent_control_pb2, live_pb2, live_pb2_grpc
from tests.integration.controller_proc import (
    database_url,
    device_channel,
    ingest_stub,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
    status,
)
from tests.integration.test_agent_control_support import FAST, LeasedAgent, control_stub
from tests.support import wait_until

REFRESH_S = 0.2


class _NoAccounts:
    def grant(self, device_id: str) -> tuple[str, str]:
        return "", ""

    def remove(self, device_id: str) -> None:
        return None


class Held:
    """A streaming call read (or awaited) in a thread; its end is kept."""

    def __init__(self, start: object) -> None:
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self.call = start
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            call = self.call
            if callable(call):
                call()
            else:
                for _ in call:  # type: ignore[attr-defined]
                    pass
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self.ended.set()


def _blocked(first: object | None, release: threading.Event) -> Iterator[object]:
    if first is not None:
        yield first
    release.wait(30)


def test_retiring_a_device_cuts_its_open_streams_at_once(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    register(data, "dev2", ["cam2"])
    dev1 = issue_device(data, "dev1", tmp_path / "dev1")
    dev2 = issue_device(data, "dev2", tmp_path / "dev2")
    config = make_config(data, 0, enrollment={"revocation_refresh_s": REFRESH_S})
    ctl = build_controller(config, SystemClock(), Parts(scheduler=FAST))
    ctl.start()
    release = threading.Event()
    buf = SegmentBuffer.open(tmp_path / "buffer", 50_000_000, AgentClock())
    try:
        assert ctl.enrollment is not None
        live = ctl.enrollment.guard.live
        request = agent_control_pb2.LeaseStreamRequest
        with LeasedAgent(buf, ctl.grpc_port, dev1, cameras=("cam1",)) as agent:
            other = Held(control_stub(ctl.grpc_port, dev2).StreamLeases(request(device_id="dev2")))
            feed_stub = live_pb2_grpc.LiveStub(device_channel(ctl.grpc_port, dev1))
            feed = Held(feed_stub.Feed(_blocked(live_pb2.LivePacket(), release)))
            uploads = ingest_stub(device_channel(ctl.grpc_port, dev1))
            upload = Held(lambda: uploads.Upload(_blocked(None, release), timeout=30))
            # the agent's lease stream, the feed, the upload; dev2's lease stream
            wait_until(lambda: live.of("dev1") == 3 and live.of("dev2") == 1, 10, "calls open")
            assert agent.leases.connected.is_set() and not feed.ended.is_set()

            ops = Operations(
                Catalog(ctl.catalog.engine, SystemClock()),
                EnrollmentStore(make_engine(database_url(data))),
                SystemClock(),
                _NoAccounts(),
            )
            t0 = time.monotonic()
            assert ops.retire("dev1", "test: stolen") == 0  # by hand: revoked by the cutoff
            for held in (feed, upload):
                assert held.ended.wait(5), "a call of the retired device still open"
            elapsed = time.monotonic() - t0
            for held in (feed, upload):
                assert held.error is not None
                code, text = status(held.error)
                assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in text
            # The real agent's stream is cut too, and its reconnects are refused.
            wait_until(lambda: live.of("dev1") == 0, 5, "the agent's lease stream cut")
            # The server counts the call closed before the agent's thread has read the error.
            wait_until(
                lambda: not agent.leases.connected.is_set() and bool(agent.leases.last_error),
                5,
                "the agent to see its lease stream cut",
            )
            assert "UNAUTHENTICATED" in agent.leases.last_error
            assert "revoked" in agent.leases.last_error
            time.sleep(3 * REFRESH_S)
            assert live.of("dev1") == 0
            assert not other.ended.is_set() and live.of("dev2") == 1
            print(f"\nopen calls of the retired device cut in {elapsed:.2f} s")
            assert elapsed < 2.0
    finally:
        release.set()
        buf.close()
        ctl.stop(1.0)
