"""What the gRPC server shows an operator: per-method call counts by status code, latency,
ingest bytes and segments (a server interceptor, so no servicer changes), and the standard
gRPC health service (`grpc.health.v1.Health`), SERVING once the server has started.

The interceptor wraps each handler's behaviour; it never changes a reply or a status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


def status_name(context: grpc.ServicerContext, failed: bool) -> str:
    """The status a call ended with: what the servicer set, else OK (UNKNOWN after a raise)."""
    code = context.code()  # type: ignore[attr-defined]
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


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every call (method, code) and times the non-streaming-response ones."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._m = metrics

    def _done(self, method: str, context: grpc.ServicerContext, start: float, failed: bool) -> None:
        code = status_name(context, failed)
        elapsed = time.monotonic() - start
        self._m.calls.labels(short_method(method), code).inc()
        if method == UPLOAD_METHOD:
            self._m.ingest_segments.labels(code).inc()
            self._m.upload_seconds.observe(elapsed)

    def _count_chunks(self, requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            chunk = getattr(request, "chunk", b"")
            if chunk:
                self._m.ingest_bytes.inc(len(chunk))
            yield request

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = str(details.method)
        if method.startswith("/grpc.health."):
            return handler
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(method, handler.stream_stream, chunks=True),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary, chunks=True),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream, chunks=False),
                handler.request_deserializer, handler.response_serializer,
            )  # fmt: skip
        return grpc.unary_unary_rpc_method_handler(
            self._unary(method, handler.unary_unary, chunks=False),
            handler.request_deserializer, handler.response_serializer,
        )  # fmt: skip

    def _unary(self, method: str, behaviour: Any, chunks: bool) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.monotonic()
            failed = True
            try:
                reply = behaviour(self._count_chunks(request) if chunks else request, context)
                failed = False
                return reply
            finally:
                self._m.latency.labels(short_method(method)).observe(time.monotonic() - start)
                self._done(method, context, start, failed)

        return call

    def _streaming(self, method: str, behaviour: Any, chunks: bool) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.monotonic()
            failed = True
            try:
                yield from behaviour(self._count_chunks(request) if chunks else request, context)
                failed = False
            finally:
                self._done(method, context, start, failed)

        return call


class Health:
    """The standard health service: NOT_SERVING until `serving()`, again at `stopping()`."""

    def __init__(self) -> None:
        self.servicer = health.HealthServicer()
        self.servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    def register(self, server: grpc.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, server)

    def serving(self) -> None:
        self.servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    def stopping(self) -> None:
        self.servicer.enter_graceful_shutdown()
