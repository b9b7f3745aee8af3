"""gRPC client of the controller's `vigil.v1.Ingest` service: one resumable segment upload.

`IngestClient.upload` asks the server how much of the segment it already holds (`QueryOffset`),
then streams a header carrying that offset followed by the missing bytes, paced by the token
bucket. A committed segment with the same SHA-256 is a success without sending anything; the
same id with another hash is a `ConflictError` (after offering our header, so the controller
records the possible tampering too). Every gRPC failure is translated here, once,
into the exception tree of `errors.py`; callers never see grpc types.

Stopping must never look like "end of data" to the server (a half-closed stream with too few
bytes is a client error there, and could cost the staged bytes we want to resume from): an
aborted upload *cancels* the call (an HTTP/2 reset) instead of ending the request stream.

The channel is built by `connect()` and injected, so tests can hand in any channel (e.g. an
insecure one to an in-test servicer) without patching modules.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import grpc

from edge_agent.clock import Clock
from edge_agent.model import SegmentInfo
from edge_agent.uplink.errors import (
    ConflictError,
    PermanentError,
    SegmentGoneError,
    UplinkError,
    UploadCancelled,
    classify_rpc_error,
)
from edge_agent.uplink.plan import (
    AlreadyThere,
    OfferConflict,
    Outcome,
    ServerOffset,
    UploadResult,
    build_header,
    plan_resume,
    upload_deadline_s,
)
from edge_agent.uplink.ratelimit import TokenBucket
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 15.0
# How often a blocked upload looks at its cancel event: bounds how long stop() can take.
_CANCEL_POLL_S = 0.1
# Safety net for the sender thread waiting for a cancellation that never comes.
_PARK_LIMIT_S = 300.0
# Reconnect quickly after a controller restart (gRPC's default backoff grows to 120 s): a
# channel still waiting out a 5 s reconnect backoff fails calls fast and delays the resume.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def load_credentials(ca_cert: Path, client_cert: Path, client_key: Path) -> grpc.ChannelCredentials:
    """Mutual-TLS credentials from PEM files (the CA that signed the controller, our cert+key)."""
    try:
        root = ca_cert.read_bytes()
        chain = client_cert.read_bytes()
        key = client_key.read_bytes()
    except OSError as exc:
        raise UplinkError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc
    return grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )


def connect(
    target: str,
    credentials: grpc.ChannelCredentials,
    chunk_bytes: int,
    server_name: str | None = None,
) -> grpc.Channel:
    """A TLS channel to the controller (lazy: connects on first call, reconnects by itself)."""
    options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS)
    options.append(("grpc.max_send_message_length", chunk_bytes + 64 * 1024))
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)


class _Stream:
    """Shared state of one streaming call between the caller and gRPC's sender thread."""

    def __init__(self) -> None:
        self.wake = threading.Event()  # the call finished, or the sender wants it aborted
        self.finished = threading.Event()  # the call is over (completed or cancelled)
        self.abort: UplinkError | None = None
        self.bytes_sent = 0

    def fail(self, error: UplinkError) -> None:
        self.abort = error
        self.wake.set()

    def done(self) -> None:
        self.finished.set()
        self.wake.set()


class IngestClient:
    """Uploads segments to one controller; safe to share between upload threads."""

    def __init__(
        self,
        channel: grpc.Channel,
        chunk_bytes: int,
        bucket: TokenBucket | None,
        clock: Clock,
    ) -> None:
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self._channel = channel
        self._stub = ingest_pb2_grpc.IngestStub(channel)
        self._chunk = chunk_bytes
        self._bucket = bucket
        self._clock = clock

    def close(self) -> None:
        self._channel.close()

    def query_offset(self, segment_id: str, camera_id: str) -> ServerOffset:
        request = ingest_pb2.QueryOffsetRequest(segment_id=segment_id, camera_id=camera_id)
        try:
            reply = self._stub.QueryOffset(request, timeout=QUERY_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise classify_rpc_error(exc, f"QueryOffset {segment_id}", "query") from exc
        return ServerOffset(reply.offset, reply.committed, reply.sha256.hex())

    def upload(
        self,
        info: SegmentInfo,
        path: Path,
        lease_id: str = "",
        cancel: threading.Event | None = None,
    ) -> UploadResult:
        """Upload one segment, resuming where the server left off; returns its acknowledgement.

        Raises an UplinkError subclass (see errors.py); UploadCancelled once `cancel` is set.
        """
        cancel = cancel or threading.Event()
        handle = _open_segment(info, path)
        try:
            if cancel.is_set():
                raise UploadCancelled(f"segment {info.segment_id}: uploader stopping")
            plan = plan_resume(info, self.query_offset(info.segment_id, info.camera_id))
            if isinstance(plan, AlreadyThere):
                return UploadResult(info.segment_id, Outcome.ALREADY_COMMITTED, None, "", 0, 0)
            if isinstance(plan, OfferConflict):
                # Header only (offset = size): the server refuses and records the conflict.
                log.warning(
                    "segment %s: controller holds SHA-256 %s, ours is %s; reporting the conflict",
                    info.segment_id,
                    plan.server_sha256,
                    info.sha256,
                )
                return self._stream(info, handle, info.size_bytes, lease_id, cancel)
            return self._stream(info, handle, plan.offset, lease_id, cancel)
        finally:
            handle.close()

    def _stream(
        self,
        info: SegmentInfo,
        handle: BinaryIO,
        offset: int,
        lease_id: str,
        cancel: threading.Event,
    ) -> UploadResult:
        state = _Stream()
        header = build_header(info, offset, lease_id)
        rate = self._bucket.rate_bps if self._bucket else None
        deadline = upload_deadline_s(info.size_bytes - offset, rate)
        started = self._clock.monotonic()
        requests = self._requests(info, handle, header, state, cancel)
        future = self._stub.Upload.future(requests, timeout=deadline)
        future.add_done_callback(lambda _f: state.done())
        while not state.wake.wait(_CANCEL_POLL_S):
            if cancel.is_set():
                break
        if not future.done():
            future.cancel()
        if not future.cancelled():
            # The call ended by itself: the server's answer wins, even if we were stopping
            # meanwhile (a commit that happened must be reported, or it is uploaded again).
            try:
                reply = future.result()
            except grpc.RpcError as exc:
                raise classify_rpc_error(exc, f"Upload {info.segment_id}", "upload") from exc
            elapsed = max(1e-6, self._clock.monotonic() - started)
            log.debug(
                "segment %s: %d bytes from offset %d in %.2fs (%.0f kbit/s)",
                info.segment_id,
                state.bytes_sent,
                offset,
                elapsed,
                state.bytes_sent * 8 / elapsed / 1000,
            )
            return _result(info, reply, offset, state.bytes_sent)
        if state.abort is not None:
            raise state.abort
        raise UploadCancelled(f"segment {info.segment_id}: uploader stopping")

    def _requests(
        self,
        info: SegmentInfo,
        handle: BinaryIO,
        header: ingest_pb2.SegmentHeader,
        state: _Stream,
        cancel: threading.Event,
    ) -> Iterator[ingest_pb2.UploadRequest]:
        """Header, then paced chunks. Runs in gRPC's sender thread.

        On any reason to stop it asks the caller to cancel the call and then waits for that,
        instead of returning: returning would half-close the stream ("that's all the data").
        """
        yield ingest_pb2.UploadRequest(header=header)
        remaining = info.size_bytes - header.offset
        try:
            handle.seek(header.offset)
            while remaining > 0 and not state.finished.is_set():
                if cancel.is_set():
                    state.fail(UploadCancelled(f"segment {info.segment_id}: uploader stopping"))
                    break
                data = handle.read(min(self._chunk, remaining))
                if not data:
                    state.fail(
                        SegmentGoneError(f"segment {info.segment_id}: file shrank while uploading")
                    )
                    break
                delay = self._bucket.take(len(data)) if self._bucket else 0.0
                if delay > 0 and cancel.wait(delay):
                    if self._bucket:
                        self._bucket.refund(len(data))  # never sent
                    continue  # loop top reports the cancellation
                yield ingest_pb2.UploadRequest(chunk=data)
                state.bytes_sent += len(data)
                remaining -= len(data)
        except (OSError, ValueError) as exc:  # ValueError: handle closed once the call ended
            if not state.finished.is_set():
                state.fail(SegmentGoneError(f"segment {info.segment_id}: cannot read: {exc}"))
        if state.abort is not None:
            # Park until the caller has cancelled the call; the send of "close" is then skipped.
            state.finished.wait(timeout=_PARK_LIMIT_S)


def _open_segment(info: SegmentInfo, path: Path) -> BinaryIO:
    """Open the local file, checking it is the size the buffer indexed."""
    try:
        handle = open(path, "rb")  # closed by upload()
    except OSError as exc:
        raise SegmentGoneError(f"segment {info.segment_id}: cannot open {path}: {exc}") from exc
    size = os.fstat(handle.fileno()).st_size
    if size != info.size_bytes:
        handle.close()
        raise SegmentGoneError(
            f"segment {info.segment_id}: file {path} has {size} bytes, index says {info.size_bytes}"
        )
    return handle


def _result(
    info: SegmentInfo, reply: ingest_pb2.UploadResponse, offset: int, sent: int
) -> UploadResult:
    """Turn the server's reply into an UploadResult, refusing replies that are not a commit."""
    kinds = {
        ingest_pb2.UploadResponse.OUTCOME_COMMITTED: Outcome.COMMITTED,
        ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED: Outcome.ALREADY_COMMITTED,
        ingest_pb2.UploadResponse.OUTCOME_ACCEPTED: Outcome.ACCEPTED,
    }
    outcome = kinds.get(reply.outcome)
    if outcome is None:
        raise PermanentError(
            f"Upload {info.segment_id}: the controller answered without a commit outcome "
            f"({reply.outcome})",
            "UNKNOWN",
        )
    if reply.sha256 and reply.sha256.hex() != info.sha256.lower():
        raise ConflictError(
            f"Upload {info.segment_id}: the controller acknowledged SHA-256 "
            f"{reply.sha256.hex()}, ours is {info.sha256}",
            "ALREADY_EXISTS",
        )
    return UploadResult(info.segment_id, outcome, reply.chain_ok, reply.object_key, offset, sent)
