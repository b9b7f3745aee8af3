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
import functools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc

from controller.grpcserver.identity import device_from_auth
from controller.grpcserver.limits import Budget, Gate
from controller.grpcserver.settle import release_when_done
from controller.ingest.feed import Malformed, Requests, StreamBroken
from controller.ingest.rules import Code, Header, IngestError, hash_hex
from controller.ingest.service import IngestService, Part
from controller.ingest.wire import ChunkRequest, UploadMessage, parse_upload_request
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vigil.ingest")

SERVICE = "vigil.v1.Ingest"
_STATUS = {code: getattr(grpc.StatusCode, code.value) for code in Code}


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


def _parts(requests: Iterator[UploadMessage]) -> Iterator[Part]:
    for request in requests:
        if isinstance(request, ChunkRequest):  # wire.py: the chunk, not copied
            yield request.chunk
            continue
        kind = request.WhichOneof("part")
        if kind == "header":
            yield header_from_proto(request.header)
        elif kind == "chunk":
            yield request.chunk
        else:
            raise IngestError(Code.INVALID_ARGUMENT, "UploadRequest with neither header nor chunk")


def add_ingest_to_server(servicer: IngestServicer, server: grpc.aio.Server) -> None:
    """`add_IngestServicer_to_server` with Upload's chunks read without a copy (wire.py)."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Upload": grpc.stream_unary_rpc_method_handler(
            servicer.Upload,
            request_deserializer=parse_upload_request,
            response_serializer=ingest_pb2.UploadResponse.SerializeToString,
        ),
        "QueryOffset": grpc.unary_unary_rpc_method_handler(
            servicer.QueryOffset,
            request_deserializer=ingest_pb2.QueryOffsetRequest.FromString,
            response_serializer=ingest_pb2.QueryOffsetResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


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
        request_iterator: AsyncIterator[UploadMessage],
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
        finally:
            requests.close()
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
