"""Building the controller's gRPC server: `grpc.aio` on one event-loop thread, mutual TLS,
bounded blocking work and message sizes.

Why asyncio: a connected agent holds a lease stream for hours. On the synchronous server each
open stream pinned one handler thread (256 by default, 4,096 at most), and once they were all
taken, uploads and lease calls of agents already connected failed too. Here an open stream is
a suspended coroutine (a few kB), so one process holds a city's agents (≥ 10,000).

Threading model: the event loop runs in its own thread (`grpc-loop`) and never blocks.
Blocking work (catalog/SQL, staging writes, hashing, object-store puts, scheduler calls) goes
to the loop's default executor, a `ThreadPoolExecutor` of `max_workers` threads
(`grpc-work`), through `loop.run_in_executor(None, ...)`; the servicers bound how much of it
each kind of call may queue (limits.py). The rest of the controller stays synchronous threads.

Services are added by registration callbacks (`add_IngestServicer_to_server`-style), so the
fleet's AgentControl service can join the same server without this module knowing it. A
servicer with plain (non-async) methods still works: gRPC runs it on the same executor.

New calls are taken by `ACCEPT_LOOPS` servers sharing the port (ports.py says why), all on
the one event loop: each registration is called once per server and adds the same servicer
objects, so state stays in one place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from controller.grpcserver.ports import claim_port, with_port

Registration = Callable[[grpc.aio.Server], None]
# Servers on one port (ports.py). 4: a 10,000-agent report burst on a loaded 2-core machine
# waited 0.53 s (p50) for its handler with 1 and 0.27-0.35 s with 4 (docs/benchmarks.md).
ACCEPT_LOOPS = 4
T = TypeVar("T")
log = logging.getLogger("vigil.grpc")


def server_options(max_message_bytes: int, share_port: bool = False) -> list[tuple[str, int]]:
    """Channel arguments: refuse oversize messages, drop dead peers, and share the port only
    with this process's own accept loops (`share_port`; see `AioServer`)."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        # Without this a second controller on the same port would silently share it (with
        # `share_port` the port is claimed first by `claim_port`, which no other can share).
        ("grpc.so_reuseport", 1 if share_port else 0),
        # Ping idle connections so a cut village link frees its stream, slot and memory.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


class AioServer:
    """A `grpc.aio` server and the event-loop thread it runs on.

    The loop thread starts here (the port must be bound, and a busy port must fail, when the
    controller is built); `start()` starts serving and `stop()` drains the server, then ends
    the loop thread and the executor.
    """

    def __init__(self, max_workers: int, accept_loops: int = 1) -> None:
        self.accept_loops = accept_loops
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-work")
        self.loop.set_default_executor(self.executor)
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)
        self._thread.start()
        self._servers: list[grpc.aio.Server] = []
        self._stopped = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop from another thread and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _build(
        self,
        registrations: Sequence[Registration],
        listen: str,
        credentials: grpc.ServerCredentials | None,
        max_message_bytes: int,
        interceptors: Sequence[grpc.aio.ServerInterceptor],
    ) -> int:
        share = self.accept_loops > 1
        port = 0
        if share:  # see ports.py: nobody else may share the port
            claimed = claim_port(listen)
            if claimed is None:
                return 0
            listen = with_port(listen, claimed)
        for _ in range(self.accept_loops):
            server = grpc.aio.server(
                migration_thread_pool=self.executor,
                options=server_options(max_message_bytes, share),
                interceptors=list(interceptors),
            )
            for register in registrations:
                register(server)
            self._servers.append(server)
            address = listen if port == 0 else with_port(listen, port)
            if credentials is None:
                bound = server.add_insecure_port(address)
            else:
                bound = server.add_secure_port(address, credentials)
            if bound == 0:
                return 0
            port = bound
        return port

    def start(self) -> None:
        for server in self._servers:
            self.call(server.start(), 30)

    def stop(self, grace_s: float | None = None) -> threading.Event:
        """Refuse new calls, give open ones `grace_s`, cancel the rest, end the loop thread.
        Returns a set event (the synchronous server's `stop().wait()` shape)."""
        if self._stopped.is_set():
            return self._stopped
        try:
            if self._servers and self.loop.is_running():
                stops = [server.stop(grace_s) for server in self._servers]
                self.call(_all(stops), (grace_s or 0) + 10)
            if self.loop.is_running():
                self.call(_cancel_the_rest(), 10)
        except Exception:
            log.exception("stopping the gRPC server failed")
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.executor.shutdown(wait=False, cancel_futures=True)
            if not self._thread.is_alive():
                self.loop.close()
            self._stopped.set()
        return self._stopped


async def _all(coros: Sequence[Coroutine[Any, Any, Any]]) -> None:
    await asyncio.gather(*coros)


async def _cancel_the_rest() -> None:
    """End the servicers' own tasks (e.g. a leadership watcher) before the loop stops."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def build_server(
    registrations: Sequence[Registration],
    listen: str,
    credentials: grpc.ServerCredentials | None,
    max_workers: int,
    max_message_bytes: int,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    accept_loops: int = ACCEPT_LOOPS,
) -> tuple[AioServer, int]:
    """A bound (not yet serving) server on `listen`; returns it and its port.

    `credentials` None binds without TLS: only for the benchmark's bare baseline and tests
    that measure gRPC itself, never for the controller. `max_workers`: threads for blocking
    work (the servicers refuse calls with RESOURCE_EXHAUSTED rather than queue without bound).
    `accept_loops`: servers sharing the port (ports.py), each taking new calls from gRPC's
    core one at a time.
    """
    server = AioServer(max_workers, accept_loops)
    try:
        port = server.call(
            server._build(registrations, listen, credentials, max_message_bytes, interceptors),
            30,
        )
    except RuntimeError as exc:
        server.stop(0)
        raise OSError(f"cannot listen on {listen}: {exc}") from exc
    except BaseException:
        server.stop(0)
        raise
    if port == 0:
        server.stop(0)
        raise OSError(f"cannot listen on {listen}")
    return server, port
