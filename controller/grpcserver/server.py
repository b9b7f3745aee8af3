"""Building the controller's gRPC server: mutual TLS, bounded threads and message sizes.

Services are added by registration callbacks (`add_IngestServicer_to_server`-style), so the
fleet's AgentControl service can join the same server without this module knowing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc

Registration = Callable[[grpc.Server], None]


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Channel arguments: refuse oversize messages, never share the port, drop dead peers."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        # Without this a second controller on the same port would silently share it.
        ("grpc.so_reuseport", 0),
        # Ping idle connections so a cut village link frees its handler thread and slot.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def build_server(
    registrations: Sequence[Registration],
    listen: str,
    credentials: grpc.ServerCredentials | None,
    max_workers: int,
    max_message_bytes: int,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server bound to `listen`; returns it and its port.

    `credentials` None binds without TLS: only for the benchmark's bare baseline and tests
    that measure gRPC itself, never for the controller. More RPCs than `max_workers` at once
    are refused with RESOURCE_EXHAUSTED by gRPC instead of queueing without bound.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=server_options(max_message_bytes),
        maximum_concurrent_rpcs=max_workers,
        interceptors=list(interceptors),
    )
    for register in registrations:
        register(server)
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, port
