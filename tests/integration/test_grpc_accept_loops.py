"""A gRPC server with several accept loops on one port (controller/grpcserver/server.py and
ports.py): every loop serves the same servicers, connections are spread over them, and the
port stays this process's alone — a second server, or anything already listening, makes the
build fail as with one loop."""

from __future__ import annotations

import socket
from collections import Counter
from typing import Any

import grpc
import pytest

from controller.grpcserver.server import AioServer, build_server

METHOD = "/test.Echo/Call"


def _counting(seen: Counter[int]) -> list[Any]:
    """Registrations that add a handler which counts the calls each server (loop) took."""
    registered: list[int] = []

    def register(server: grpc.aio.Server) -> None:
        index = len(registered)
        registered.append(index)

        async def call(request: bytes, context: Any) -> bytes:
            seen[index] += 1
            return request

        handler = grpc.unary_unary_rpc_method_handler(call)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", {"Call": handler}),)
        )

    return [register]


def test_every_accept_loop_serves_and_connections_are_spread_over_them() -> None:
    seen: Counter[int] = Counter()
    server, port = build_server(_counting(seen), "127.0.0.1:0", None, 4, 1024, accept_loops=4)
    try:
        server.start()
        for i in range(48):  # its own connection each (no shared subchannel)
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                call = channel.unary_unary(METHOD)
                assert call(b"%d" % i, timeout=20) == b"%d" % i
    finally:
        server.stop(1.0).wait(10)
    assert sum(seen.values()) == 48
    assert len(seen) >= 2, f"one loop took every connection: {dict(seen)}"


def test_the_port_is_not_shared_with_another_server_or_listener() -> None:
    first: AioServer
    first, port = build_server(_counting(Counter()), "127.0.0.1:0", None, 2, 1024)
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            build_server(_counting(Counter()), f"127.0.0.1:{port}", None, 2, 1024)
    finally:
        first.stop(0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        for loops in (1, 4):
            with pytest.raises(OSError, match="cannot listen"):
                build_server(
                    _counting(Counter()), f"127.0.0.1:{taken}", None, 2, 1024, accept_loops=loops
                )
