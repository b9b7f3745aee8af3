"""What the gRPC server shows an operator: per-method call counts by status code, latency,
ingest bytes and segments (a server interceptor, so no servicer changes), and the standard
gRPC health service (`grpc.health.v1.Health`), SERVING once the server has started.

The interceptor wraps each handler's behaviour; it never changes a reply or a status.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, Counter, Histogram

UPLOAD_METHOD = "/vigil.v1.Ingest/Upload"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def short_method(full: str) -> str:
    """`/vigil.v1.Ingest/Upload` -> `Ingest/Upload` (a bounded label: the registered methods)."""
    service, _, method = full.rpartition("/")
    return f"{service.rpartition('.')[2]}/{method}" if service else full


def status_name(context: Any, failed: bool) -> str:
    """The status a call ended with: what the servicer set, else OK (UNKNOWN after a raise)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "UNKNOWN" if failed else "OK"


class RpcMetrics:
    """The gRPC families, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "vigil_grpc_calls_total", "gRPC calls finished, by method and status code",
            ["method", "code"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "vigil_grpc_call_seconds", "gRPC call duration (unary and client-streaming calls)",
            ["method"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.ingest_bytes = Counter(
            "vigil_ingest_bytes_total", "Segment bytes received by Upload calls", registry=registry
        )
        self.ingest_segments = Counter(
            "vigil_ingest_segments_total", "Upload calls finished, by status code", ["code"],
            registry=registry,
        )  # fmt: skip
        self.upload_seconds = Histogram(
            "vigil_ingest_upload_seconds", "Duration of one segment's Upload call",
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call (method, code) and times the non-streaming-response ones.

    An asyncio interceptor: it wraps each handler's coroutine (or async generator) on the
    event loop, so it adds no thread and never blocks. A handler that is not async (a plain
    servicer on the migration pool) is passed through uncounted.
    """

    def __init__(self, metrics: RpcMetrics) -> None:
        self._m = metrics

    def _done(self, method: str, context: Any, start: float, failed: bool) -> None:
        code = status_name(context, failed)
        elapsed = time.monotonic() - start
        self._m.calls.labels(short_method(method), code).inc()
        if method == UPLOAD_METHOD:
            self._m.ingest_segments.labels(code).inc()
            self._m.upload_seconds.observe(elapsed)

    async def _count_chunks(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for request in requests:
            chunk = getattr(request, "chunk", b"")
            if chunk:
                self._m.ingest_bytes.inc(len(chunk))
            yield request

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        if method.startswith("/grpc.health."):
            return handler
        if handler.request_streaming and handler.response_streaming:
            behaviour = handler.stream_stream
            if not inspect.isasyncgenfunction(behaviour):
                return handler
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(method, behaviour, chunks=True),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        if handler.request_streaming:
            behaviour = handler.stream_unary
            if not inspect.iscoroutinefunction(behaviour):
                return handler
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, behaviour, chunks=True),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        if handler.response_streaming:
            behaviour = handler.unary_stream
            if not inspect.isasyncgenfunction(behaviour):
                return handler
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, behaviour, chunks=False),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        behaviour = handler.unary_unary
        if not inspect.iscoroutinefunction(behaviour):
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._unary(method, behaviour, chunks=False),
            handler.request_deserializer, handler.response_serializer,
        )  # fmt: skip

    def _unary(self, method: str, behaviour: Any, chunks: bool) -> Callable[[Any, Any], Any]:
        async def call(request: Any, context: Any) -> Any:
            start = time.monotonic()
            failed = True
            try:
                reply = await behaviour(self._count_chunks(request) if chunks else request, context)
                failed = False
                return reply
            finally:
                self._m.latency.labels(short_method(method)).observe(time.monotonic() - start)
                self._done(method, context, start, failed)

        return call

    def _streaming(self, method: str, behaviour: Any, chunks: bool) -> Callable[[Any, Any], Any]:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            start = time.monotonic()
            failed = True
            try:
                async for reply in behaviour(
                    self._count_chunks(request) if chunks else request, context
                ):
                    yield reply
                failed = False
            finally:
                self._done(method, context, start, failed)

        return call


class Health:
    """The standard health service (its asyncio servicer): NOT_SERVING until `serving()`,
    again at `stopping()`.

    The servicer lives on the gRPC event loop (its watchers are asyncio conditions), so the
    controller's threads change the status through `loop` once the server is registered.
    """

    def __init__(self) -> None:
        self.servicer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, server: grpc.aio.Server) -> None:
        """Called on the event loop while the server is built (a `Registration`)."""
        if self.servicer is None:  # one servicer for every accept loop of the server
            self._loop = asyncio.get_running_loop()
            self.servicer = health.aio.HealthServicer()
            self._call(self.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def _call(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run on the loop: directly while registering, else from a controller thread."""
        assert self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._loop.create_task(coro)
            return
        if self._loop.is_closed() or not self._loop.is_running():
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def serving(self) -> None:
        if self.servicer is not None:
            self._call(self.servicer.set("", health_pb2.HealthCheckResponse.SERVING))

    def set_service(self, service: str, serving: bool) -> None:
        """The status of one named service (`vigil.v1.Ingest`: the store answers)."""
        if self.servicer is not None:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            self._call(self.servicer.set(service, status))

    def stopping(self) -> None:
        if self.servicer is not None:
            self._call(self.servicer.enter_graceful_shutdown())
