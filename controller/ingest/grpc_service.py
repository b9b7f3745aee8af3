"""`vigil.v1.Ingest` over gRPC: protobuf in, `IngestService` calls, status codes out.

This is the only ingest module that knows gRPC. The device's identity is the CN of the client
certificate the TLS handshake verified (controller/grpcserver/identity.py), never a field the
client sends. The servicer is async (the controller's gRPC server is `grpc.aio`); each call's
blocking work runs on the server's worker threads. `IngestError` codes map one to one onto
gRPC status codes; anything else is logged and answered INTERNAL so a bug in one stream never
takes the server down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from controller.grpcserver.identity import device_from_auth
from controller.grpcserver.limits import Budget, Gate
from controller.grpcserver.settle import release_when_done
from controller.ingest.rules import Code, Header, IngestError, hash_hex
from controller.ingest.service import IngestService, Part
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vigil.ingest")

_STATUS = {code: getattr(grpc.StatusCode, code.value) for code in Code}


class StreamBroken(Exception):
    """The stream ended because gRPC aborted or the client cancelled, not by a half-close."""


class Malformed(Exception):
    """A message of the stream does not parse as an UploadRequest."""


def header_from_proto(pb: ingest_pb2.SegmentHeader) -> Header:
    """Wire header to plain data; hashes become hex (length checked here)."""
    return Header(
        segment_id=pb.segment_id,
        camera_id=pb.camera_id,
        start_us=pb.start_unix_us,
        duration_us=pb.duration_us,
        size_bytes=pb.size_bytes,
        sha256=hash_hex(pb.sha256, "sha256", required=True),
        prev_sha256=hash_hex(pb.prev_sha256, "prev_sha256", required=False),
        lease_id=pb.lease_id,
        offset=pb.offset,
        container=pb.container,
        flags=pb.flags,
    )


def _parts(requests: Iterator[ingest_pb2.UploadRequest]) -> Iterator[Part]:
    for request in requests:
        kind = request.WhichOneof("part")
        if kind == "header":
            yield header_from_proto(request.header)
        elif kind == "chunk":
            yield request.chunk
        else:
            raise IngestError(Code.INVALID_ARGUMENT, "UploadRequest with neither header nor chunk")


class Requests:
    """The async request stream of one Upload, read from a worker thread, one message at a
    time (each read runs on the event loop; the thread waits for it).

    Why: `IngestService.upload` is synchronous (staging writes, hashing, the store's put and
    the catalog row all block), so it runs on a worker thread, and this is its iterator.
    `cancel()` (any thread: the idle reaper) ends the stream: the pending read is cancelled
    and the thread sees `StreamBroken`, exactly like a client that went away.
    """

    def __init__(
        self,
        requests: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext[Any, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._it = requests.__aiter__()
        self._context = context
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: concurrent.futures.Future[ingest_pb2.UploadRequest] | None = None
        self._cancelled = False

    async def _next(self) -> ingest_pb2.UploadRequest:
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

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            pending = self._pending
        if pending is not None:
            pending.cancel()

    def __iter__(self) -> Iterator[ingest_pb2.UploadRequest]:
        return self

    def __next__(self) -> ingest_pb2.UploadRequest:
        with self._lock:
            if self._cancelled:
                raise StreamBroken("the stream was cancelled")
            pending = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            self._pending = pending
        try:
            return pending.result()
        except StopAsyncIteration:
            raise StopIteration from None
        except (StreamBroken, Malformed):
            raise
        except (concurrent.futures.CancelledError, asyncio.CancelledError, grpc.RpcError) as exc:
            raise StreamBroken("the stream ended before its end") from exc
        except RuntimeError as exc:  # the loop is closed: the server is stopping
            raise StreamBroken(str(exc)) from exc
        finally:
            with self._lock:
                self._pending = None


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    """Async servicer: the blocking work of each call runs on the loop's executor.

    `uploads`: in-flight Upload calls (each holds a worker thread while it runs); the upload
    slots (slots.py) then apply the per-device shares and the reserve. `calls`: QueryOffset
    calls waiting for or holding a thread. Both refuse with RESOURCE_EXHAUSTED when full, so
    a flood of uploads never delays resume queries nor the other services' calls.
    """

    def __init__(self, service: IngestService, calls: Budget | None = None) -> None:
        self._service = service
        shares = service.slots.shares
        self._uploads = Gate(Budget("uploads", shares.pool, max(shares.per_device, 1)))
        self._calls = Gate(calls or Budget("calls", 256, 8))

    async def _device(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        device = device_from_auth(context.auth_context())
        if device is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate on this connection"
            )
        assert device is not None  # abort() raised otherwise
        return device

    async def Upload(  # gRPC method name
        self,
        request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ingest_pb2.UploadResponse:
        device = await self._device(context)
        refused = self._uploads.acquire(device)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        loop = asyncio.get_running_loop()
        requests = Requests(request_iterator, context, loop)
        work = loop.run_in_executor(
            None,
            functools.partial(
                self._service.upload, device, _parts(requests), on_cancel=requests.cancel
            ),
        )
        # The place is given back when the thread is done, not when the call is.
        work.add_done_callback(release_when_done(lambda: self._uploads.release(device)))
        try:
            result = await asyncio.shield(work)
        except asyncio.CancelledError:
            requests.cancel()  # the client went away: its thread stops at the next read
            raise
        except IngestError as exc:
            log.info("upload refused (device %s): %s: %s", device, exc.code, exc.message)
            await context.abort(_STATUS[exc.code], exc.message)
        except Malformed:
            # What the synchronous server answered for a message that does not parse.
            await context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        except (grpc.RpcError, StreamBroken):
            # The client went away or gRPC already answered; staged bytes stay for resume.
            await context.abort(grpc.StatusCode.CANCELLED, "stream broken before the end")
        except Exception:
            log.exception("upload from device %s failed unexpectedly", device)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; nothing was committed")
        outcome = (
            ingest_pb2.UploadResponse.OUTCOME_ACCEPTED
            if result.queued
            else ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED
            if result.already
            else ingest_pb2.UploadResponse.OUTCOME_COMMITTED
        )
        return ingest_pb2.UploadResponse(
            segment_id=result.segment_id,
            outcome=outcome,
            sha256=bytes.fromhex(result.sha256),
            chain_ok=result.chain_ok,
            object_key=result.object_key,
        )

    async def QueryOffset(  # gRPC method name
        self, request: ingest_pb2.QueryOffsetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ingest_pb2.QueryOffsetResponse:
        device = await self._device(context)
        refused = self._calls.acquire(device)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(
            None, self._service.query_offset, device, request.segment_id, request.camera_id
        )
        work.add_done_callback(release_when_done(lambda: self._calls.release(device)))
        try:
            answer = await asyncio.shield(work)
        except IngestError as exc:
            await context.abort(_STATUS[exc.code], exc.message)
        except Exception:
            log.exception("QueryOffset from device %s failed unexpectedly", device)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return ingest_pb2.QueryOffsetResponse(
            offset=answer.offset,
            committed=answer.committed,
            sha256=bytes.fromhex(answer.sha256) if answer.sha256 else b"",
        )
