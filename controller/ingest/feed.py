"""An Upload's async request stream, handed to the worker thread that receives the segment.

`IngestService.upload` is synchronous (the store's PUT, staging writes, hashing and the
catalog row all block), so it runs on a worker thread and this is its iterator. A pump task
on the event loop reads the messages and hands them over through a small queue: it reads at
most `AHEAD` messages before the thread has taken them (memory per upload stays bounded, and
a slow store still stops the reads, hence the agent, through gRPC flow control), and the
next read overlaps the thread's work on the current chunk.

Why not one `run_coroutine_threadsafe` per message (what this replaced): each message then
cost a coroutine, a task, two chained futures and a wake-up of the loop, and the loop's read
only began once the thread asked. Now the loop is woken only when the pump waited for room.

`cancel()` (any thread: the idle reaper, or the call being cancelled) ends the stream: the
pending read is cancelled and the thread sees `StreamBroken`, like a client that went away.
`close()` (on the loop, when the call is over) stops the pump whatever happened.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from controller.ingest.wire import UploadMessage

AHEAD = 2  # messages read before the worker took them
_WAIT_S = 1.0  # how often a waiting worker checks that the loop still runs


class StreamBroken(Exception):
    """The stream ended because gRPC aborted or the client cancelled, not by a half-close."""


class Malformed(Exception):
    """A message of the stream does not parse as an UploadRequest."""


class _End:
    """The client half-closed the stream: no more messages."""


class Requests:
    """Create on the event loop (it starts the pump there); iterate on a worker thread."""

    def __init__(
        self,
        requests: AsyncIterator[UploadMessage],
        context: grpc.aio.ServicerContext[Any, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._it = requests.__aiter__()
        self._context = context
        self._loop = loop
        self._cond = threading.Condition()
        self._ready: collections.deque[UploadMessage] = collections.deque()
        self._end: _End | BaseException | None = None
        self._cancelled = False
        self._parked = False  # the pump waits for room (guarded by _cond)
        self._room = asyncio.Event()  # touched on the loop only
        self._task = loop.create_task(self._pump())

    async def _next(self) -> UploadMessage:
        try:
            return await self._it.__anext__()
        except DecodeError as exc:
            raise Malformed(str(exc)) from exc
        except StopAsyncIteration:
            # gRPC ends the stream quietly when it aborted the call (e.g. a message that
            # does not parse): that must not look like the client's end of data.
            if self._context.cancelled() or self._context.done():
                raise StreamBroken("the call is no longer active") from None
            raise

    async def _pump(self) -> None:
        """Read until the end, an error or cancellation; never raises (nobody awaits it)."""
        end: _End | BaseException
        try:
            while True:
                with self._cond:
                    full = len(self._ready) >= AHEAD
                    if full:
                        self._parked = True
                        self._room.clear()
                if full:
                    await self._room.wait()
                    continue
                message = await self._next()
                with self._cond:
                    self._ready.append(message)
                    self._cond.notify()
        except StopAsyncIteration:
            end = _End()
        except (Malformed, StreamBroken) as exc:
            end = exc
        except (asyncio.CancelledError, grpc.RpcError) as exc:
            end = StreamBroken(f"the stream ended before its end ({type(exc).__name__})")
        except Exception as exc:  # handed to the worker, which raises it
            end = exc
        with self._cond:
            self._end = end
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        try:
            self._loop.call_soon_threadsafe(self._task.cancel)
        except RuntimeError:  # the loop is closed: the pump is gone with it
            pass

    def close(self) -> None:
        """On the loop, once the call is over: stop reading."""
        self._task.cancel()

    def __iter__(self) -> Iterator[UploadMessage]:
        return self

    def __next__(self) -> UploadMessage:
        with self._cond:
            while not self._ready and self._end is None and not self._cancelled:
                if not self._cond.wait(_WAIT_S) and not self._loop.is_running():
                    raise StreamBroken("the server is stopping")
            if self._cancelled:
                raise StreamBroken("the stream was cancelled")
            if not self._ready:
                end = self._end
                if isinstance(end, _End):
                    raise StopIteration
                assert end is not None
                raise end
            message = self._ready.popleft()
            wake, self._parked = self._parked, False
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._room.set)
            except RuntimeError:  # the loop is closed: the next read says so
                pass
        return message
