"""Helpers for the lease and job tests (no tests in here): a real controller with the
scheduler wired in (in this process: real gRPC server with mutual TLS, SQLite, local store)
and a real leased agent (SegmentBuffer on disk, IngestClient, LeasedUploader, LeaseClient).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.jobs import JobService
from controller.scheduler.grpc_service import AgentControlServicer
from controller.scheduler.service import SchedulerOptions, SchedulerService
from edge_agent.clock import SystemClock
from edge_agent.leases import LeaseClient, LeaseClientOptions, LeasedJobSource, LeasedUploader
from edge_agent.model import AgentEvent
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import IngestClient, RetryPolicy, TokenBucket
from edge_agent.uplink.client import connect, load_credentials
from protos.vigil.v1 import agent_control_pb2_grpc
from tests.integration.controller_proc import DeviceCreds, device_channel, make_config

FAST = SchedulerOptions(
    horizon_s=1.0,
    evidence_horizon_s=0.5,
    lease_grace_s=0.5,
    tick_s=0.05,
    replan_interval_s=1.0,
    progress_interval_s=0.2,
    default_link_bps=40_000_000,
    delivery_window_s=5.0,
)
FAST_AGENT = LeaseClientOptions(
    inventory_interval_s=0.5, backoff_initial_s=0.1, backoff_cap_s=0.5, settle_s=5.0
)


@dataclass
class Running:
    controller: Controller
    scheduler: SchedulerService

    @property
    def port(self) -> int:
        return self.controller.grpc_port

    def jobs(self) -> JobService:
        return JobService(self.controller.catalog, self.controller.clock)


@contextmanager
def scheduled_controller(
    data_dir: Path, options: SchedulerOptions = FAST, attach: bool = True
) -> Iterator[Running]:
    """A started controller with AgentControl; `attach=False` serves it without a scheduler
    (its RPCs answer UNAVAILABLE), like a controller that never leases anything."""
    config = make_config(data_dir, 0)
    if attach:
        controller = build_controller(config, ControllerClock(), Parts(scheduler=options))
    else:
        bare = AgentControlServicer()
        controller = build_controller(
            config,
            ControllerClock(),
            services=[lambda s: agent_control_pb2_grpc.add_AgentControlServicer_to_server(bare, s)],
        )
    scheduler = controller.scheduler or SchedulerService(controller.catalog, controller.clock)
    controller.start()
    try:
        yield Running(controller, scheduler)
    finally:
        controller.stop(grace_s=1.0)


def control_stub(port: int, dev: DeviceCreds) -> agent_control_pb2_grpc.AgentControlStub:
    return agent_control_pb2_grpc.AgentControlStub(device_channel(port, dev))


class LeasedAgent:
    """The agent's transport half under leases, in this process."""

    def __init__(
        self,
        buffer: SegmentBuffer,
        port: int,
        dev: DeviceCreds,
        options: LeaseClientOptions = FAST_AGENT,
        cameras: tuple[str, ...] | None = None,
        chunk_bytes: int = 32 * 1024,
    ) -> None:
        clock = SystemClock()
        self.buffer = buffer
        self.events: list[AgentEvent] = []
        creds = load_credentials(dev.ca_path, dev.cert_path, dev.key_path)
        self.channel: grpc.Channel = connect(f"127.0.0.1:{port}", creds, chunk_bytes)
        self.bucket = TokenBucket(8_000, chunk_bytes, clock)
        self.client = IngestClient(self.channel, chunk_bytes, self.bucket, clock)
        self.source = LeasedJobSource(buffer, self.bucket, clock)
        self.uploader = LeasedUploader(
            buffer,
            self.client,
            clock,
            self.events.append,
            self.source,
            policy=RetryPolicy(initial_s=0.1, cap_s=0.5, park_s=3600),
            idle_poll_s=0.05,
        )
        self.leases = LeaseClient(
            dev.device_id,
            self.channel,
            buffer,
            self.source,
            clock,
            options,
            known_cameras=cameras,
            wake_uploader=self.uploader.wake,
        )

    def __enter__(self) -> LeasedAgent:
        self.uploader.start()
        self.leases.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.leases.stop()
        self.uploader.stop()
        self.channel.close()

    def unsent(self) -> int:
        return self.buffer.stats().unsent_segments
