"""`vigil.v1.Ingest` over gRPC: protobuf in, `IngestService` calls, status codes out.

This is the only ingest module that knows gRPC. The device's identity is the CN of the client
certificate the TLS handshake verified (controller/grpcserver/identity.py), never a field the
client sends. `IngestError` codes map one to one onto gRPC status codes; anything else is
logged and answered INTERNAL so a bug in one stream never takes the server down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from controller.grpcserver.identity import device_from_auth
from controller.ingest.rules import Code, Header, IngestError, hash_hex
from controller.ingest.service import IngestService, Part
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("vigil.ingest")

_STATUS = {code: getattr(grpc.StatusCode, code.value) for code in Code}


class StreamBroken(Exception):
    """The stream ended because gRPC aborted or the client cancelled, not by a half-close."""


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


def _parts(
    requests: Iterator[ingest_pb2.UploadRequest], context: grpc.ServicerContext
) -> Iterator[Part]:
    for request in requests:
        kind = request.WhichOneof("part")
        if kind == "header":
            yield header_from_proto(request.header)
        elif kind == "chunk":
            yield request.chunk
        else:
            raise IngestError(Code.INVALID_ARGUMENT, "UploadRequest with neither header nor chunk")
    # gRPC ends the iterator quietly when it aborted the call (e.g. a message that does not
    # parse): that must not look like the client's end of data, or we might commit.
    if not context.is_active():
        raise StreamBroken("the call is no longer active")


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    def __init__(self, service: IngestService) -> None:
        self._service = service

    def _device(self, context: grpc.ServicerContext) -> str:
        device = device_from_auth(context.auth_context())
        if device is None:
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no verified client certificate on this connection"
            )
        assert device is not None  # abort() raised otherwise
        return device

    def Upload(  # gRPC method name
        self,
        request_iterator: Iterator[ingest_pb2.UploadRequest],
        context: grpc.ServicerContext,
    ) -> ingest_pb2.UploadResponse:
        device = self._device(context)
        try:
            result = self._service.upload(
                device, _parts(request_iterator, context), on_cancel=context.cancel
            )
        except IngestError as exc:
            log.info("upload refused (device %s): %s: %s", device, exc.code, exc.message)
            context.abort(_STATUS[exc.code], exc.message)
        except (grpc.RpcError, StreamBroken):
            # The client went away or gRPC already answered; staged bytes stay for resume.
            context.abort(grpc.StatusCode.CANCELLED, "stream broken before the end")
        except Exception:
            log.exception("upload from device %s failed unexpectedly", device)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; nothing was committed")
        outcome = (
            ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED
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

    def QueryOffset(  # gRPC method name
        self, request: ingest_pb2.QueryOffsetRequest, context: grpc.ServicerContext
    ) -> ingest_pb2.QueryOffsetResponse:
        device = self._device(context)
        try:
            answer = self._service.query_offset(device, request.segment_id, request.camera_id)
        except IngestError as exc:
            context.abort(_STATUS[exc.code], exc.message)
        except Exception:
            log.exception("QueryOffset from device %s failed unexpectedly", device)
            context.abort(grpc.StatusCode.INTERNAL, "internal error")
        return ingest_pb2.QueryOffsetResponse(
            offset=answer.offset,
            committed=answer.committed,
            sha256=bytes.fromhex(answer.sha256) if answer.sha256 else b"",
        )
