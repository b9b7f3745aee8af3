"""IngestClient against a tiny in-test Ingest servicer: a real gRPC server with mutual TLS.

The servicer keeps staged and committed bytes in memory and records what each stream carried,
so the client's wire behaviour is checked exactly: resume sends only the missing bytes, a
stop cancels the call (never a half-close with too few bytes), pacing holds, status codes map
onto the exception tree. The real controller is exercised in test_uplink_controller.py.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from controller.pki.certs import KeyPair, create_ca, issue_device_cert, issue_server_cert
from edge_agent.clock import SystemClock
from edge_agent.model import SegmentFlag, SegmentInfo, SegmentState
from edge_agent.uplink.client import IngestClient, connect, load_credentials
from edge_agent.uplink.errors import (
    ConflictError,
    PermanentError,
    RetryableError,
    SegmentGoneError,
    UplinkError,
    UploadCancelled,
)
from edge_agent.uplink.plan import Outcome
from edge_agent.uplink.ratelimit import TokenBucket
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support import wait_until

CHUNK = 16 * 1024


@dataclass
class Stream:
    segment_id: str = ""
    offset: int = -1
    received: int = 0
    ended: str = ""  # "committed" | "short" (half-closed early) | "cancelled" | "aborted"

    def end_if_open(self, how: str) -> None:
        if not self.ended:
            self.ended = how


@dataclass
class FakeIngest(ingest_pb2_grpc.IngestServicer):
    """Stages chunks per segment like the real server: resume = what is staged."""

    staged: dict[str, bytearray] = field(default_factory=dict)
    committed: dict[str, str] = field(default_factory=dict)  # segment id -> sha hex
    streams: list[Stream] = field(default_factory=list)
    # Faults: abort the next stream after this many chunks, or refuse with a status code.
    break_after_chunks: int | None = None
    refuse: grpc.StatusCode | None = None
    identities: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def QueryOffset(self, request, context):
        with self.lock:
            if request.segment_id in self.committed:
                sha = bytes.fromhex(self.committed[request.segment_id])
                return ingest_pb2.QueryOffsetResponse(offset=0, committed=True, sha256=sha)
            held = len(self.staged.get(request.segment_id, b""))
            return ingest_pb2.QueryOffsetResponse(offset=held, committed=False)

    def Upload(self, request_iterator, context):
        self.identities.extend(
            n.decode() for n in context.auth_context().get("x509_common_name", [])
        )
        stream = Stream()
        with self.lock:
            self.streams.append(stream)
        context.add_callback(lambda: stream.end_if_open("cancelled"))
        if self.refuse is not None:
            stream.ended = "aborted"
            context.abort(self.refuse, "refused by test")
        header: ingest_pb2.SegmentHeader | None = None
        chunks = 0
        for req in request_iterator:
            if req.HasField("header"):
                header = req.header
                stream.segment_id, stream.offset = header.segment_id, header.offset
                theirs = self.committed.get(header.segment_id)
                if theirs is not None and theirs != header.sha256.hex():
                    stream.ended = "aborted"
                    context.abort(grpc.StatusCode.ALREADY_EXISTS, "committed with another hash")
                with self.lock:
                    buf = self.staged.setdefault(header.segment_id, bytearray())
                    assert header.offset <= len(buf), "resume beyond staged bytes"
                    del buf[header.offset :]
                continue
            assert header is not None
            with self.lock:
                self.staged[header.segment_id] += req.chunk
            stream.received += len(req.chunk)
            chunks += 1
            if self.break_after_chunks is not None and chunks >= self.break_after_chunks:
                self.break_after_chunks = None
                stream.ended = "aborted"
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped by test")
        assert header is not None
        with self.lock:
            data = bytes(self.staged[header.segment_id])
        if len(data) != header.size_bytes:
            # gRPC's server may end the request iterator quietly on a client's RST_STREAM, just
            # as on a half-close; only a cancelled call turns inactive without our answer.
            deadline = time.monotonic() + 1.0
            while context.is_active() and time.monotonic() < deadline:
                time.sleep(0.01)
            stream.ended = "short" if context.is_active() else "cancelled"
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"got {len(data)} bytes")
        sha = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.committed[header.segment_id] = sha
            del self.staged[header.segment_id]
        stream.ended = "committed"
        return ingest_pb2.UploadResponse(
            segment_id=header.segment_id,
            outcome=ingest_pb2.UploadResponse.OUTCOME_COMMITTED,
            sha256=bytes.fromhex(sha),
            chain_ok=True,
            object_key=f"c/s/{header.camera_id}/{header.segment_id}.ts",
        )


@dataclass
class Pki:
    ca: KeyPair
    server: KeyPair
    device: KeyPair
    dir: Path

    def files(self, pair: KeyPair, ca: KeyPair | None = None, name: str = "dev") -> list[Path]:
        paths = [self.dir / f"{name}-ca.crt", self.dir / f"{name}.crt", self.dir / f"{name}.key"]
        for path, data in zip(
            paths, [(ca or self.ca).cert_pem, pair.cert_pem, pair.key_pem], strict=True
        ):
            path.write_bytes(data)
        return paths


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = datetime.now(UTC)
    ca = create_ca(now)
    return Pki(
        ca,
        issue_server_cert(ca, [], now),
        issue_device_cert(ca, "dev1", now),
        tmp_path_factory.mktemp("pki"),
    )


@pytest.fixture
def server(pki: Pki) -> Iterator[tuple[FakeIngest, str]]:
    servicer = FakeIngest()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ingest_pb2_grpc.add_IngestServicer_to_server(servicer, srv)
    creds = grpc.ssl_server_credentials(
        [(pki.server.key_pem, pki.server.cert_pem)],
        root_certificates=pki.ca.cert_pem,
        require_client_auth=True,
    )
    port = srv.add_secure_port("127.0.0.1:0", creds)
    srv.start()
    yield servicer, f"127.0.0.1:{port}"
    srv.stop(grace=None)


def make_client(pki: Pki, target: str, bucket: TokenBucket | None = None, pair=None, ca=None):
    creds = load_credentials(*pki.files(pair or pki.device, ca))
    return IngestClient(connect(target, creds, CHUNK), CHUNK, bucket, SystemClock())


def segment(
    tmp_path: Path, size: int = 10 * CHUNK + 123, sid: str = "cam1-1"
) -> tuple[SegmentInfo, Path, bytes]:
    data = hashlib.sha256(sid.encode()).digest() * (size // 32 + 1)
    data = data[:size]
    path = tmp_path / f"{sid}.ts"
    path.write_bytes(data)
    info = SegmentInfo(
        segment_id=sid,
        camera_id="cam1",
        start_us=1_767_225_600_000_000,
        duration_us=10_000_000,
        size_bytes=size,
        sha256=hashlib.sha256(data).hexdigest(),
        prev_sha256="",
        container="ts",
        flags=SegmentFlag.NONE,
        state=SegmentState.UNSENT,
        filename=path.name,
    )
    return info, path, data


def test_upload_streams_every_byte_over_mtls(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, data = segment(tmp_path)
    client = make_client(pki, target)
    try:
        result = client.upload(info, path, lease_id="L1")
    finally:
        client.close()
    assert result.outcome is Outcome.COMMITTED and result.chain_ok is True
    assert (result.resumed_from, result.bytes_sent) == (0, len(data))
    assert result.object_key.endswith("cam1-1.ts")
    assert servicer.committed == {"cam1-1": hashlib.sha256(data).hexdigest()}
    assert servicer.identities == ["dev1"]  # the server saw our certificate's CN


def test_resume_after_a_broken_stream_sends_only_the_missing_bytes(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, data = segment(tmp_path)
    servicer.break_after_chunks = 4
    client = make_client(pki, target)
    try:
        with pytest.raises(RetryableError, match="UNAVAILABLE"):
            client.upload(info, path)
        held = len(servicer.staged["cam1-1"])
        assert held == 4 * CHUNK
        result = client.upload(info, path)
    finally:
        client.close()
    assert result.resumed_from == held and result.bytes_sent == len(data) - held
    assert [s.offset for s in servicer.streams] == [0, held]
    assert sum(s.received for s in servicer.streams) == len(data)  # nothing sent twice
    assert servicer.committed["cam1-1"] == info.sha256


def test_already_committed_same_hash_sends_nothing(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, _data = segment(tmp_path)
    servicer.committed["cam1-1"] = info.sha256
    client = make_client(pki, target)
    try:
        result = client.upload(info, path)
    finally:
        client.close()
    assert result.outcome is Outcome.ALREADY_COMMITTED and result.bytes_sent == 0
    assert servicer.streams == []


def test_committed_with_another_hash_is_a_conflict_offered_without_data(
    pki, server, tmp_path
) -> None:
    servicer, target = server
    info, path, _data = segment(tmp_path)
    theirs = hashlib.sha256(b"forged").hexdigest()
    servicer.committed["cam1-1"] = theirs
    client = make_client(pki, target)
    try:
        with pytest.raises(ConflictError) as caught:
            client.upload(info, path)
    finally:
        client.close()
    assert caught.value.code == "ALREADY_EXISTS"
    # The header went out (so the server can record the conflict), no data did.
    assert [(s.offset, s.received) for s in servicer.streams] == [(info.size_bytes, 0)]
    assert servicer.committed == {"cam1-1": theirs}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, RetryableError),
        (grpc.StatusCode.UNAVAILABLE, RetryableError),
        (grpc.StatusCode.NOT_FOUND, PermanentError),
        (grpc.StatusCode.PERMISSION_DENIED, PermanentError),
        (grpc.StatusCode.INVALID_ARGUMENT, PermanentError),
        (grpc.StatusCode.ALREADY_EXISTS, ConflictError),
        (grpc.StatusCode.FAILED_PRECONDITION, ConflictError),
    ],
)
def test_server_status_codes_map_onto_the_tree(pki, server, tmp_path, code, error) -> None:
    servicer, target = server
    servicer.refuse = code
    info, path, _data = segment(tmp_path)
    client = make_client(pki, target)
    try:
        with pytest.raises(error) as caught:
            client.upload(info, path)
    finally:
        client.close()
    assert caught.value.code == code.name and "refused by test" in str(caught.value)
    assert servicer.committed == {}


def test_cancel_resets_the_call_and_never_half_closes(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, _data = segment(tmp_path, size=40 * CHUNK)
    # 160 kB/s: the whole segment would take ~4 s; we stop it after ~0.3 s.
    bucket = TokenBucket(1_280_000, CHUNK, SystemClock())
    client = make_client(pki, target, bucket)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(UploadCancelled):
            client.upload(info, path, cancel=cancel)
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        client.close()
    assert elapsed < 2.0
    wait_until(lambda: servicer.streams and servicer.streams[0].ended, 5, "server saw the end")
    assert servicer.streams[0].ended == "cancelled"  # not "short": no half-close
    held = len(servicer.staged["cam1-1"])
    assert 0 < held < info.size_bytes and servicer.committed == {}


def test_rate_cap_is_honoured(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, data = segment(tmp_path, size=25 * CHUNK)  # 400 kB
    rate_bps = 1_600_000  # 200 kB/s
    bucket = TokenBucket(rate_bps, CHUNK, SystemClock())
    client = make_client(pki, target, bucket)
    started = time.monotonic()
    try:
        client.upload(info, path)
    finally:
        client.close()
    elapsed = time.monotonic() - started
    paced = (len(data) - CHUNK) * 8 / rate_bps  # the first chunk rides on the burst
    assert elapsed >= paced * 0.95, f"{len(data)} bytes in {elapsed:.2f}s beats the cap"
    assert elapsed < paced + 10.0
    assert servicer.committed["cam1-1"] == info.sha256


def test_local_file_missing_or_changed_is_segment_gone(pki, server, tmp_path) -> None:
    servicer, target = server
    info, path, _data = segment(tmp_path)
    client = make_client(pki, target)
    try:
        with path.open("ab") as f:
            f.write(b"extra")
        with pytest.raises(SegmentGoneError, match="index says"):
            client.upload(info, path)
        path.unlink()
        with pytest.raises(SegmentGoneError, match="cannot open"):
            client.upload(info, path)
    finally:
        client.close()
    assert servicer.streams == []


def test_certificate_from_another_ca_is_refused(pki, server, tmp_path) -> None:
    servicer, target = server
    now = datetime.now(UTC)
    rogue_ca = create_ca(now, name="Rogue CA")
    rogue = issue_device_cert(rogue_ca, "dev1", now)
    info, path, _data = segment(tmp_path)
    client = make_client(pki, target, pair=rogue)
    try:
        with pytest.raises(UplinkError):
            client.upload(info, path)
    finally:
        client.close()
    assert servicer.streams == [] and servicer.committed == {}


def test_unreachable_controller_is_retryable(pki, tmp_path) -> None:
    info, path, _data = segment(tmp_path)
    client = make_client(pki, "127.0.0.1:1")
    try:
        with pytest.raises(RetryableError, match="UNAVAILABLE"):
            client.upload(info, path)
    finally:
        client.close()


def test_missing_tls_files_give_a_clear_error(tmp_path) -> None:
    with pytest.raises(UplinkError, match="cannot read TLS file .*nope.crt"):
        load_credentials(tmp_path / "nope.crt", tmp_path / "a", tmp_path / "b")


def test_the_fake_server_tells_a_half_close_from_a_cancel(pki, server, tmp_path) -> None:
    """The oracle of the cancel test: a stream ended early by the client reads as "short"."""
    servicer, target = server
    info, path, data = segment(tmp_path)
    creds = load_credentials(*pki.files(pki.device))
    channel = connect(target, creds, CHUNK)
    header = ingest_pb2.SegmentHeader(segment_id=info.segment_id, size_bytes=len(data), offset=0)
    requests = [ingest_pb2.UploadRequest(header=header), ingest_pb2.UploadRequest(chunk=data[:100])]
    try:
        with pytest.raises(grpc.RpcError) as caught:
            ingest_pb2_grpc.IngestStub(channel).Upload(iter(requests), timeout=10)
    finally:
        channel.close()
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [s.ended for s in servicer.streams] == ["short"]
