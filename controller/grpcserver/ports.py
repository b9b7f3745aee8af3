"""The listening port of a gRPC server with several accept loops.

Why several: a `grpc.aio` server takes new calls from gRPC's core one at a time (one
`request_call` outstanding, re-armed by the event loop after each call). On a loaded
controller every round of that costs a few event-loop and GIL hand-offs, so new calls
queue in the core: 10,000 agents' reports waited 0.5-7 s before their handler started,
and calls left unaccepted for 30 s (`grpc.server_max_unrequested_time_in_server`) were
cancelled (connect storms: 363 of 10,000 agents CANCELLED). Several servers on one port
(SO_REUSEPORT; the kernel spreads connections over their sockets) accept that many calls
per round, on the same event loop and servicers.

SO_REUSEPORT would also let a second controller of the same user share the port silently,
so the port is first claimed with a plain socket (no SO_REUSEPORT): a port that anything
listens on, our own accept loops included, fails the claim, and the server refuses to
start as before.
"""

from __future__ import annotations

import contextlib
import socket


def split_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); ValueError when there is no port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not host:port: {listen!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def with_port(listen: str, port: int) -> str:
    """`listen` with its port replaced (the host kept as written)."""
    host, _, _ = listen.rpartition(":")
    return f"{host}:{port}"


def claim_port(listen: str) -> int | None:
    """A port for `listen` that no socket listens on now (its own if it names one, else
    one the kernel picks), or None when it is taken or cannot be bound. The probe socket
    is closed again: the servers bind it next (a race with another process in between
    makes their bind fail, not share)."""
    try:
        host, port = split_listen(listen)
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (ValueError, OSError):
        return None
    with contextlib.ExitStack() as probes:
        for family, kind, proto, _, address in infos:
            probe = probes.enter_context(socket.socket(family, kind, proto))
            # As gRPC's own listener: a port with connections in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address[0], port, *address[2:]))
                probe.listen(1)
            except OSError:
                return None
            port = probe.getsockname()[1]  # the kernel's pick, for the other addresses too
    return port
