"""Building a controller's scheduler: the service and its AgentControl gRPC registration.

    parts = scheduler(core, options_from(config), commands=fleet.service)

The service is built first and the servicer around it, so the registration can join the
ingest server before that is bound; `commands` (the fleet's MQTT service, or None without a
broker) also carries holds as `hold` commands. Nothing is started here.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from controller.config import SchedulerConfig
from controller.leader import Leadership
from controller.runtime import Core
from controller.scheduler.board import PlanBoard
from controller.scheduler.grpc_service import AgentControlServicer, ControlLimits
from controller.scheduler.options import SchedulerOptions
from controller.scheduler.service import SchedulerService
from controller.scheduler.upkeep import CommandSender
from protos.vigil.v1 import agent_control_pb2_grpc


@dataclass(frozen=True, slots=True)
class Scheduler:
    """The scheduler component and the registration that serves it over AgentControl."""

    service: SchedulerService
    servicer: AgentControlServicer

    def register(self, server: grpc.aio.Server) -> None:
        agent_control_pb2_grpc.add_AgentControlServicer_to_server(self.servicer, server)


def options_from(s: SchedulerConfig) -> SchedulerOptions:
    """SchedulerOptions from `[scheduler]` (the other tunables keep their defaults)."""
    return SchedulerOptions(
        topology_path=s.topology_file,
        default_link_bps=s.default_link_bps,
        root_bps=s.root_bps,
        horizon_s=s.horizon_s,
        hysteresis=s.hysteresis,
        lease_grace_s=s.lease_grace_s,
        replan_interval_s=s.replan_interval_s,
    )


def scheduler(
    core: Core,
    options: SchedulerOptions,
    commands: CommandSender | None = None,
    leadership: Leadership | None = None,
) -> Scheduler:
    """The scheduler on the core's catalog and clock; `commands` sends holds over MQTT;
    `leadership` (default: a sole leader) makes AgentControl refuse on a follower."""
    service = SchedulerService(
        core.catalog,
        core.clock,
        options,
        fleet=commands,
        leadership=leadership,
        fence_writes=core.config.cluster.enabled,
        board=PlanBoard(core.engine) if core.config.cluster.enabled else None,
    )
    limits = ControlLimits(streams=core.config.grpc.max_lease_streams)
    return Scheduler(service, AgentControlServicer(service, leadership=leadership, limits=limits))
