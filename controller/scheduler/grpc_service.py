"""`vigil.v1.AgentControl` over gRPC: inventories in, leases out, on the ingest server.

The device is the CN of the verified client certificate (the same helper as ingest), never
a field the client sends: a request naming another device is refused PERMISSION_DENIED
before anything is read. A report that cannot be true is INVALID_ARGUMENT and changes
nothing; a lease report about another device's lease is PERMISSION_DENIED, about a lease
never issued NOT_FOUND. Anything unexpected is logged and answered INTERNAL.

The servicer is async (the server is `grpc.aio`): an open lease stream is a coroutine waiting
on an asyncio event that the device's mailbox sets from the scheduler's thread, so ten
thousand streams cost memory, not threads. Scheduler calls (they take its lock) run on the
server's worker threads. Limits per kind of call (controller/grpcserver/limits.py): lease
streams (one per device; a second replaces the first; a global cap) and unary calls are
budgeted apart, so a full server refuses new work with RESOURCE_EXHAUSTED and never stalls
the agents already connected.

On a follower replica (`not leadership.is_leader()`) every call but Enroll and FetchConfig
is refused FAILED_PRECONDITION "not the scheduler leader" with trailing metadata
`LEADER_METADATA_KEY` = the leader's address, and open lease streams end the same way within
`LEADER_CHECK_S` of losing the leadership.

`Enroll` and `FetchConfig` belong to enrollment and provisioning: they are delegated to
handlers given at construction (run on a worker thread), and answered UNIMPLEMENTED until
someone wires them. A servicer built without a SchedulerService answers the scheduler's
RPCs UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import grpc

from controller.clock import Clock, SystemClock
from controller.grpcserver.identity import device_from_auth
from controller.grpcserver.limits import Budget, Gate
from controller.grpcserver.settle import release_when_done
from controller.leader import LEADER_METADATA_KEY, Leadership, SoleLeader
from controller.scheduler.leases import ForeignLeaseError, LeaseError, UnknownLeaseError
from controller.scheduler.model import SchedulerError
from controller.scheduler.service import LeaseBox, SchedulerService
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc

log = logging.getLogger("vigil.scheduler")

LEADER_CHECK_S = 1.0  # how soon open streams end after the leadership is lost
NOT_LEADER = "not the scheduler leader"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Req, Context], Resp]


@dataclass(frozen=True, slots=True)
class ControlLimits:
    """Budgets of AgentControl calls (from [grpc] in controller.toml)."""

    streams: int = 20_000  # open lease streams of the whole controller
    streams_per_device: int = 2  # a successor may overlap its predecessor briefly
    calls: int = 512  # unary calls waiting for or holding a worker thread
    calls_per_device: int = 8
    # Threads running scheduler calls. They all take the scheduler's one lock, so more
    # threads only queue on it (and on the GIL): a few keep the lock busy and no more.
    threads: int = 4


@dataclass(eq=False)
class _Open:
    """One open lease stream, as the leadership watcher sees it."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lost: bool = False


class _Wakeups:
    """Sets the streams' asyncio events from the scheduler's threads with one loop wake-up
    per burst: a replan that pushes leases to ten thousand streams (under the scheduler's
    lock) writes to the loop's self-pipe once, not ten thousand times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[asyncio.Event] = []

    def set(self, event: asyncio.Event) -> None:
        """Any thread; never blocks on the loop."""
        with self._lock:
            self._pending.append(event)
            first = len(self._pending) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass  # the loop is closed: the server stopped

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for event in pending:
            event.set()


class AgentControlServicer(agent_control_pb2_grpc.AgentControlServicer):
    def __init__(
        self,
        service: SchedulerService | None = None,
        enroll: Handler[agent_control_pb2.EnrollRequest, agent_control_pb2.EnrollResponse]
        | None = None,
        fetch_config: Handler[agent_control_pb2.FetchConfigRequest, agent_control_pb2.AgentConfig]
        | None = None,
        clock: Clock | None = None,
        leadership: Leadership | None = None,
        limits: ControlLimits | None = None,
    ) -> None:
        self._service = service
        self._clock = clock or SystemClock()
        self._enroll = enroll
        self._fetch_config = fetch_config
        self._leadership: Leadership = leadership or SoleLeader()
        lim = limits or ControlLimits()
        self._streams = Gate(
            Budget("lease streams", lim.streams, lim.streams_per_device, replaces=True)
        )
        self._calls = Gate(Budget("calls", lim.calls, lim.calls_per_device))
        self._open: set[_Open] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(lim.threads, thread_name_prefix="agent-control")
        self._wakeups: _Wakeups | None = None

    @property
    def open_streams(self) -> int:
        return len(self._open)

    async def _device(self, context: Context, named: str) -> str:
        device = device_from_auth(context.auth_context())
        if device is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate on this connection"
            )
        assert device is not None
        if named and named != device:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"device {device!r} may not speak for device {named!r}",
            )
        return device

    async def _not_leader(self, context: Context) -> NoReturn:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            NOT_LEADER,
            trailing_metadata=((LEADER_METADATA_KEY, self._leadership.leader_address()),),
        )
        raise AssertionError("abort() raises")

    async def _scheduler(self, context: Context) -> SchedulerService:
        if not self._leadership.is_leader():
            await self._not_leader(context)
        if self._service is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the scheduler is not running yet")
        assert self._service is not None
        return self._service

    async def _blocking(self, context: Context, device: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a worker thread, within the unary budget (RESOURCE_EXHAUSTED past
        it). The place is given back when the thread is done, not when the call is."""
        refused = self._calls.acquire(device)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        work = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        work.add_done_callback(release_when_done(lambda: self._calls.release(device)))
        return await asyncio.shield(work)

    async def ReportInventory(  # gRPC method name
        self, request: agent_control_pb2.Inventory, context: Context
    ) -> agent_control_pb2.InventoryAck:
        device = await self._device(context, request.device_id)
        service = await self._scheduler(context)
        try:
            version = await self._blocking(
                context, device, service.report_inventory, device, request
            )
        except SchedulerError as exc:
            log.info("inventory of %s refused: %s", device, exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("inventory of %s failed unexpectedly", device)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the plan is unchanged")
        # The controller's clock in the answer: agents measure their own against it (NTP-like).
        return agent_control_pb2.InventoryAck(
            plan_version=version, server_unix_us=self._clock.now_us()
        )

    async def StreamLeases(  # gRPC method name
        self, request: agent_control_pb2.LeaseStreamRequest, context: Context
    ) -> AsyncIterator[agent_control_pb2.Lease]:
        device = await self._device(context, request.device_id)
        service = await self._scheduler(context)
        refused = self._streams.acquire(device)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        loop = asyncio.get_running_loop()
        state = _Open()
        self._open.add(state)
        self._watch_leadership()
        box: LeaseBox | None = None
        try:
            box = await self._connect(service, device, loop)

            wakeups = self._wakeups_on(loop)
            box.watch(lambda: wakeups.set(state.wake))
            while not state.lost:
                state.wake.clear()  # before polling, so a put in between is not missed
                msg = box.poll()
                if box.closed:
                    break  # replaced by a newer stream of the device, or the scheduler stopped
                if msg is not None:
                    yield msg
                    continue
                await state.wake.wait()
        finally:
            self._open.discard(state)
            self._streams.release(device)
            if box is not None:
                box.close()
                _in_thread(loop, service.disconnect, device, box)
        if state.lost:
            await self._not_leader(context)

    async def _connect(
        self, service: SchedulerService, device: str, loop: asyncio.AbstractEventLoop
    ) -> LeaseBox:
        work = loop.run_in_executor(self._pool, service.connect, device)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The client left while the scheduler was connecting it: undo once it is done.
            def undo(done: asyncio.Future[LeaseBox]) -> None:
                if not done.cancelled() and done.exception() is None:
                    done.result().close()
                    _in_thread(loop, service.disconnect, device, done.result())

            work.add_done_callback(undo)
            raise

    def _wakeups_on(self, loop: asyncio.AbstractEventLoop) -> _Wakeups:
        if self._wakeups is None or self._wakeups.loop is not loop:
            self._wakeups = _Wakeups(loop)
        return self._wakeups

    def _watch_leadership(self) -> None:
        """One task per servicer (not one timer per stream) ends every open stream once the
        leadership is lost; it runs while streams are open."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._leadership_watch())

    async def _leadership_watch(self) -> None:
        while self._open:
            await asyncio.sleep(LEADER_CHECK_S)
            if not self._leadership.is_leader():
                for state in list(self._open):
                    state.lost = True
                    state.wake.set()

    async def FinishLease(  # gRPC method name
        self, request: agent_control_pb2.LeaseReport, context: Context
    ) -> agent_control_pb2.LeaseReportAck:
        device = await self._device(context, "")
        service = await self._scheduler(context)
        try:
            await self._blocking(context, device, service.finish_lease, device, request)
        except ForeignLeaseError as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except UnknownLeaseError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (LeaseError, SchedulerError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("lease report of %s failed unexpectedly", device)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return agent_control_pb2.LeaseReportAck()

    async def Enroll(  # gRPC method name
        self, request: agent_control_pb2.EnrollRequest, context: Context
    ) -> agent_control_pb2.EnrollResponse:
        if self._enroll is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "enrollment is not served here")
        assert self._enroll is not None
        # No certificate yet: the budget is shared by every enrolling peer.
        return await self._blocking(context, "", self._enroll, request, context)

    async def FetchConfig(  # gRPC method name
        self, request: agent_control_pb2.FetchConfigRequest, context: Context
    ) -> agent_control_pb2.AgentConfig:
        if self._fetch_config is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "configuration is not served here")
        assert self._fetch_config is not None
        device = await self._device(context, request.device_id)
        return await self._blocking(context, device, self._fetch_config, request, context)


def _in_thread(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Run `fn(*args)` on a worker thread without waiting (in place if the server stopped)."""
    try:
        loop.run_in_executor(None, fn, *args)
    except RuntimeError:
        fn(*args)
