"""The enrollment listener: `AgentControl.Enroll` alone, on its own port, with
server-authenticated TLS (the device has no client certificate yet).

Everything else of AgentControl answers UNIMPLEMENTED here (the generated base class), so this
port gives an unenrolled peer nothing but the chance to redeem a token. Calls are rate-limited
per peer address and overall (token buckets, controller/fleet/ratelimit.py): a guessing peer
is throttled with RESOURCE_EXHAUSTED long before tokens (192 random bits) could be guessed,
and a village of devices rebooting at once still gets through.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from controller.clock import Clock
from controller.enrollment.rules import EnrollError, Refusal
from controller.enrollment.service import EnrollmentService
from controller.fleet.ratelimit import Bucket, RatePolicy, take
from controller.grpcserver.server import AioServer, build_server
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc

log = logging.getLogger("vigil.enrollment")
_STATUS = {Refusal.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT}
ELSEWHERE = "only Enroll is served on the enrollment port: use the mutual-TLS port"
MAX_PEERS = 10_000  # buckets kept; beyond it the oldest are forgotten


def peer_host(peer: str) -> str:
    """`ipv4:10.0.0.5:51234` / `ipv6:[::1]:5123` -> the host part (the bucket's key)."""
    _, _, rest = peer.partition(":")
    return rest.rpartition(":")[0] or peer


@dataclass(frozen=True, slots=True)
class Limits:
    per_peer: RatePolicy = RatePolicy(rate_per_s=0.2, burst=5.0)
    overall: RatePolicy = RatePolicy(rate_per_s=20.0, burst=200.0)


class EnrollServicer(agent_control_pb2_grpc.AgentControlServicer):
    def __init__(self, service: EnrollmentService, clock: Clock, limits: Limits) -> None:
        self._service = service
        self._clock = clock
        self._limits = limits
        self._lock = threading.Lock()
        self._peers: dict[str, Bucket] = {}
        self._all: Bucket | None = None

    def _admit(self, peer: str) -> bool:
        now = self._clock.monotonic()
        with self._lock:
            ok_all, self._all = take(self._all, now, self._limits.overall)
            ok_peer, bucket = take(self._peers.get(peer), now, self._limits.per_peer)
            if len(self._peers) >= MAX_PEERS and peer not in self._peers:
                self._peers.pop(next(iter(self._peers)))
            self._peers[peer] = bucket
        return ok_all and ok_peer

    def Enroll(  # gRPC method name; a plain method: gRPC runs it on the worker pool
        self, request: agent_control_pb2.EnrollRequest, context: grpc.ServicerContext
    ) -> agent_control_pb2.EnrollResponse:
        if not self._admit(peer_host(context.peer())):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many enrollment attempts: retry later"
            )
        try:
            return self._service.enroll(request)
        except EnrollError as exc:
            log.warning("enrollment of %r refused: %s", request.device_id[:64], exc)
            context.abort(_STATUS.get(exc.kind, grpc.StatusCode.PERMISSION_DENIED), str(exc))
        except Exception:
            log.exception("enrollment of %r failed unexpectedly", request.device_id[:64])
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        raise AssertionError("unreachable")  # context.abort raises

    # The rest of AgentControl lives on the mutual-TLS port only.
    def _elsewhere(self, context: grpc.ServicerContext) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, ELSEWHERE)
        raise AssertionError("unreachable")

    def ReportInventory(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._elsewhere(context)

    def StreamLeases(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._elsewhere(context)

    def FinishLease(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._elsewhere(context)

    def FetchConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._elsewhere(context)


class EnrollmentListener:
    """The listener as a controller component: bound when built (a busy port fails the
    start-up), serving between start() and stop()."""

    def __init__(
        self,
        servicer: EnrollServicer,
        listen: str,
        cert_pem: bytes,
        key_pem: bytes,
        max_workers: int = 8,
    ) -> None:
        credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])

        def register(server: grpc.aio.Server) -> None:
            agent_control_pb2_grpc.add_AgentControlServicer_to_server(servicer, server)

        self.server: AioServer
        self.server, self.port = build_server(
            [register], listen, credentials, max_workers, 64 * 1024
        )

    def start(self) -> None:
        self.server.start()
        log.info("enrollment listener (server-authenticated TLS) on port %d", self.port)

    def stop(self) -> None:
        self.server.stop(1.0)
