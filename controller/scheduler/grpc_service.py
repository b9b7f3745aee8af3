"""`vigil.v1.AgentControl` over gRPC: inventories in, leases out, on the ingest server.

The device is the CN of the verified client certificate (the same helper as ingest), never
a field the client sends: a request naming another device is refused PERMISSION_DENIED
before anything is read. A report that cannot be true is INVALID_ARGUMENT and changes
nothing; a lease report about another device's lease is PERMISSION_DENIED, about a lease
never issued NOT_FOUND. Anything unexpected is logged and answered INTERNAL.

`Enroll` and `FetchConfig` belong to enrollment and provisioning: they are delegated to
handlers given at construction, and answered UNIMPLEMENTED until someone wires them.
A servicer built without a SchedulerService answers the scheduler's RPCs UNAVAILABLE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from controller.clock import Clock, SystemClock
from controller.grpcserver.identity import device_from_auth
from controller.scheduler.leases import ForeignLeaseError, LeaseError, UnknownLeaseError
from controller.scheduler.model import SchedulerError
from controller.scheduler.service import SchedulerService
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc

log = logging.getLogger("vigil.scheduler")

STREAM_POLL_S = 1.0
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Req, grpc.ServicerContext], Resp]


class AgentControlServicer(agent_control_pb2_grpc.AgentControlServicer):
    def __init__(
        self,
        service: SchedulerService | None = None,
        enroll: Handler[agent_control_pb2.EnrollRequest, agent_control_pb2.EnrollResponse]
        | None = None,
        fetch_config: Handler[agent_control_pb2.FetchConfigRequest, agent_control_pb2.AgentConfig]
        | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._service = service
        self._clock = clock or SystemClock()
        self._enroll = enroll
        self._fetch_config = fetch_config

    def _device(self, context: grpc.ServicerContext, named: str) -> str:
        device = device_from_auth(context.auth_context())
        if device is None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate on this connection"
            )
        assert device is not None
        if named and named != device:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"device {device!r} may not speak for device {named!r}",
            )
        return device

    def _scheduler(self, context: grpc.ServicerContext) -> SchedulerService:
        if self._service is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the scheduler is not running yet")
        assert self._service is not None
        return self._service

    def ReportInventory(  # gRPC method name
        self, request: agent_control_pb2.Inventory, context: grpc.ServicerContext
    ) -> agent_control_pb2.InventoryAck:
        device = self._device(context, request.device_id)
        service = self._scheduler(context)
        try:
            version = service.report_inventory(device, request)
        except SchedulerError as exc:
            log.info("inventory of %s refused: %s", device, exc)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception:
            log.exception("inventory of %s failed unexpectedly", device)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; the plan is unchanged")
        # The controller's clock in the answer: agents measure their own against it (NTP-like).
        return agent_control_pb2.InventoryAck(
            plan_version=version, server_unix_us=self._clock.now_us()
        )

    def StreamLeases(  # gRPC method name
        self, request: agent_control_pb2.LeaseStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[agent_control_pb2.Lease]:
        device = self._device(context, request.device_id)
        service = self._scheduler(context)
        box = service.connect(device)
        context.add_callback(box.close)  # the client went away or the call ended
        try:
            while not box.closed and context.is_active():
                msg = box.take(STREAM_POLL_S)
                if msg is not None:
                    yield msg
        finally:
            service.disconnect(device, box)

    def FinishLease(  # gRPC method name
        self, request: agent_control_pb2.LeaseReport, context: grpc.ServicerContext
    ) -> agent_control_pb2.LeaseReportAck:
        device = self._device(context, "")
        service = self._scheduler(context)
        try:
            service.finish_lease(device, request)
        except ForeignLeaseError as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except UnknownLeaseError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (LeaseError, SchedulerError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception:
            log.exception("lease report of %s failed unexpectedly", device)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return agent_control_pb2.LeaseReportAck()

    def Enroll(  # gRPC method name
        self, request: agent_control_pb2.EnrollRequest, context: grpc.ServicerContext
    ) -> agent_control_pb2.EnrollResponse:
        if self._enroll is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "enrollment is not served here")
        assert self._enroll is not None
        return self._enroll(request, context)

    def FetchConfig(  # gRPC method name
        self, request: agent_control_pb2.FetchConfigRequest, context: grpc.ServicerContext
    ) -> agent_control_pb2.AgentConfig:
        if self._fetch_config is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "configuration is not served here")
        assert self._fetch_config is not None
        self._device(context, request.device_id)
        return self._fetch_config(request, context)
