"""How a controller gets its scheduler: one gRPC registration plus one component factory.

    register, factory = scheduler_wiring(options, fleet=fleet_of)
    controller = build_controller(config, clock, [fleet, ..., factory], [register])

The AgentControl servicer must be on the server before it starts, while the scheduler
needs the built controller's catalog and clock; the factory attaches one to the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from controller.scheduler.grpc_service import AgentControlServicer
from controller.scheduler.service import SchedulerOptions, SchedulerService
from controller.scheduler.upkeep import CommandSender
from protos.vigil.v1 import agent_control_pb2_grpc

if TYPE_CHECKING:
    from controller.app import Controller
    from protos.vigil.v1 import fleet_pb2


class LazySender:
    """A CommandSender that finds the fleet service when a command is sent: the fleet
    component builds its MQTT service only when it starts, after every factory ran."""

    def __init__(self, find: Callable[[], CommandSender | None]) -> None:
        self._find = find

    def send_command(self, device_id: str, command: fleet_pb2.Command) -> str:
        sender = self._find()
        if sender is None:
            raise RuntimeError("the fleet (MQTT) service is not running")
        return sender.send_command(device_id, command)


def fleet_of(controller: Controller) -> CommandSender | None:
    """The fleet component's command sender, if the controller runs one (list the fleet's
    factory before the scheduler's, so it is built first)."""
    from controller.fleet.component import FleetComponent

    found = [c for c in controller.components if isinstance(c, FleetComponent)]
    if not found:
        return None
    fleet = found[0]
    return LazySender(lambda: fleet.service)


def scheduler_wiring(
    options: SchedulerOptions | None = None,
    fleet: Callable[[Controller], CommandSender | None] | None = None,
    servicer: AgentControlServicer | None = None,
) -> tuple[Callable[[grpc.Server], None], Callable[[Controller], SchedulerService]]:
    """(gRPC registration, component factory). `fleet` finds the MQTT fleet service in the
    built controller, if there is one (holds then also go out as `hold` commands)."""
    servicer = servicer or AgentControlServicer()

    def register(server: grpc.Server) -> None:
        agent_control_pb2_grpc.add_AgentControlServicer_to_server(servicer, server)

    def factory(controller: Controller) -> SchedulerService:
        service = SchedulerService(
            controller.catalog,
            controller.clock,
            options,
            fleet=fleet(controller) if fleet is not None else None,
        )
        servicer.attach(service)
        return service

    return register, factory
