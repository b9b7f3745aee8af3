"""`ReadyWatch`: knowing within a second that the city can take uploads again.

The controller announces whether its ingest can commit (its object store answers) as the
standard gRPC health status of service `vigil.v1.Ingest` (controller/grpcserver/
store_health.py). This thread keeps a `Health/Watch` stream open on the control route and
calls `on_ready` whenever that status becomes SERVING after anything else: the store came
back, or the controller did (the stream breaks with it and reconnects with a short, capped
backoff: `retry_delay_s` between `initial_s` and `cap_s`). `on_ready` is the uploader's
`resume()`: backoff waits end and start over, so uploads go on ≤ ~1 s after the city is
ready, not after a minute-long backoff. A controller without that service (SERVICE_UNKNOWN)
counts as ready while its stream is open.

A status watch is one small stream per agent with nothing sent while nothing changes; the
jitter keeps a city of agents from reconnecting in lockstep.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from edge_agent.leases.control import ControlChannel
from edge_agent.uplink.failover import retry_delay_s

log = logging.getLogger(__name__)

INGEST_SERVICE = "vigil.v1.Ingest"
_READY = {
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.SERVICE_UNKNOWN,
}


def became_ready(before: bool, status: int) -> tuple[bool, bool]:
    """(ready now, whether to announce it): only a change to ready is announced (pure)."""
    now = status in _READY
    return now, now and not before


class ReadyWatch:
    """start()/stop(): one daemon thread watching the controller's ingest readiness."""

    def __init__(
        self,
        control: ControlChannel,
        on_ready: Callable[[], None],
        initial_s: float = 0.25,
        cap_s: float = 1.0,
    ) -> None:
        self._control = control
        self._on_ready = on_ready
        self._initial_s = initial_s
        self._cap_s = cap_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: grpc.RpcContext | None = None
        self._thread: threading.Thread | None = None
        self._rng = random.Random()  # noqa: S311 - retry jitter, not secrets
        self.ready = threading.Event()
        self.announcements = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ready-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self._watch_once():
                failures = 0
            failures += 1
            delay = retry_delay_s(failures, 1, self._initial_s, self._cap_s, self._rng.random())
            self._stop.wait(delay)

    def _watch_once(self) -> bool:
        """One Watch stream; True if it delivered anything (the controller was there)."""
        address = self._control.route.current()
        stub = health_pb2_grpc.HealthStub(self._control.channel(address))
        call = stub.Watch(health_pb2.HealthCheckRequest(service=INGEST_SERVICE))
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        ready = False
        received = False
        try:
            for msg in call:
                received = True
                ready, announce = became_ready(ready, msg.status)
                if ready:
                    self.ready.set()
                else:
                    self.ready.clear()
                if announce:
                    self.announcements += 1
                    log.info("controller %s ready for uploads: resuming", address)
                    self._on_ready()
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                log.debug("ready watch %s: %s", address, exc.code())
        finally:
            with self._lock:
                self._call = None
            self.ready.clear()
        return received
