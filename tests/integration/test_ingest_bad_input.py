"""Bad input and overload at the ingest port: every refusal has a clear status and message,
commits nothing (catalog and store), and leaves the server serving the next good upload.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from controller.ingest.rules import MIN_START_US
from protos.vigil.v1 import ingest_pb2
from tests.integration.controller_proc import (
    CHUNK,
    Segment,
    device_channel,
    ingest_stub,
    upload,
)
from tests.integration.test_ingest import (
    GRPC,
    MAX_SEGMENT,
    MAX_UPLOADS,
    Rig,
    _held_stream,
    open_rig,
    refused,
)
from tests.support import wait_until


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(tmp_path) as r:
        yield r


# --- bad input ------------------------------------------------------------------------------


def _with_header(seg: Segment, *chunks: bytes) -> list[ingest_pb2.UploadRequest]:
    return [ingest_pb2.UploadRequest(header=seg.header())] + [
        ingest_pb2.UploadRequest(chunk=c) for c in chunks
    ]


BAD_STREAMS = {
    "empty stream": (lambda s: [], grpc.StatusCode.INVALID_ARGUMENT, "header missing"),
    "chunk before header": (
        lambda s: [ingest_pb2.UploadRequest(chunk=s.data[:100]), *s.requests()],
        grpc.StatusCode.INVALID_ARGUMENT,
        "chunk before header",
    ),
    "header twice": (
        lambda s: [
            ingest_pb2.UploadRequest(header=s.header()),
            ingest_pb2.UploadRequest(chunk=s.data[:CHUNK]),
            ingest_pb2.UploadRequest(header=s.header()),
        ],
        grpc.StatusCode.INVALID_ARGUMENT,
        "second header",
    ),
    "neither header nor chunk": (
        lambda s: [ingest_pb2.UploadRequest(header=s.header()), ingest_pb2.UploadRequest()],
        grpc.StatusCode.INVALID_ARGUMENT,
        "neither header nor chunk",
    ),
    "chunk over the limit": (
        lambda s: _with_header(s, s.data[: CHUNK + 1]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "chunk limit",
    ),
    "more bytes than declared": (
        lambda s: [*s.requests(), ingest_pb2.UploadRequest(chunk=b"x")],
        grpc.StatusCode.INVALID_ARGUMENT,
        "more bytes than declared",
    ),
    "fewer bytes then end": (
        lambda s: list(s.requests(end=CHUNK)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fewer than declared",
    ),
    "wrong sha256": (
        lambda s: list(s.requests(sha256=hashlib.sha256(b"other").digest())),
        grpc.StatusCode.DATA_LOSS,
        "sha256 mismatch",
    ),
    "short sha256": (
        lambda s: list(s.requests(sha256=b"\x01" * 16)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "sha256 must be 32 bytes",
    ),
    "oversize segment": (
        lambda s: list(s.requests(size_bytes=MAX_SEGMENT + 1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "segment limit",
    ),
    "unknown camera": (
        lambda s: list(s.requests(camera_id="cam404", segment_id="cam404-1")),
        grpc.StatusCode.NOT_FOUND,
        "unknown camera",
    ),
    "camera of another device": (
        lambda s: list(s.requests(camera_id="cam9", segment_id="cam9-1")),
        grpc.StatusCode.PERMISSION_DENIED,
        "not registered to device 'dev1'",
    ),
    "timestamp before 2000": (
        lambda s: list(s.requests(start_unix_us=MIN_START_US - 1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "before 2000",
    ),
    "timestamp far in the future": (
        lambda s: list(s.requests(start_unix_us=s.start_us + 3 * 86_400_000_000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "in the future",
    ),
    "path traversal in the segment id": (
        lambda s: list(s.requests(segment_id="../../etc/x")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid segment_id",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_bad_input_is_refused_commits_nothing_and_the_server_keeps_serving(
    rig: Rig, case: str
) -> None:
    build, code, words = BAD_STREAMS[case]
    seg = Segment.make("cam1", size=2 * CHUNK)
    refused(lambda: rig.stub.Upload(iter(build(seg)), timeout=10), code, words)
    rig.assert_nothing_committed(seg)
    rig.assert_serving()


def test_a_message_over_the_grpc_size_limit_is_refused(rig: Rig) -> None:
    seg = Segment.make("cam1", size=GRPC["max_message_bytes"] + 10)
    requests = _with_header(seg, seg.data)
    refused(
        lambda: rig.stub.Upload(iter(requests), timeout=10),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "message larger than max",
    )
    rig.assert_nothing_committed(seg)
    rig.assert_serving()


def test_malformed_protobuf_is_refused(rig: Rig) -> None:
    seg = Segment.make("cam1", size=CHUNK)
    raw: grpc.StreamUnaryMultiCallable[bytes, ingest_pb2.UploadResponse]
    raw = rig.channel.stream_unary(
        "/vigil.v1.Ingest/Upload",
        request_serializer=None,
        response_deserializer=ingest_pb2.UploadResponse.FromString,
    )
    good = [r.SerializeToString() for r in seg.requests()]
    garbage = b"\xff\xff\xff\xff\x0f\x12"
    refused(
        lambda: raw(iter([good[0], garbage, *good[1:]]), timeout=10),
        grpc.StatusCode.INTERNAL,
        "deserializing",
    )
    # Even garbage after every valid byte must not commit.
    refused(
        lambda: raw(iter([*good, garbage]), timeout=10), grpc.StatusCode.INTERNAL, "deserializing"
    )
    rig.assert_nothing_committed(seg)
    rig.assert_serving()


def test_query_offset_checks_the_camera(rig: Rig) -> None:
    seg = Segment.make("cam404")
    refused(lambda: rig.query(seg), grpc.StatusCode.NOT_FOUND, "unknown camera")
    refused(
        lambda: rig.query(Segment.make("cam9")), grpc.StatusCode.PERMISSION_DENIED, "not registered"
    )
    refused(
        lambda: rig.query(Segment.make("cam1", segment_id="a/b")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "segment_id",
    )
    assert rig.query(Segment.make("cam1")) == 0


def test_staging_is_per_device(rig: Rig) -> None:
    """Another device cannot see or continue this device's partial upload."""
    seg = Segment.make("cam1", size=2 * CHUNK)
    refused(
        lambda: rig.stub.Upload(seg.requests(end=CHUNK), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fewer",
    )
    channel2 = device_channel(rig.ctl.port, rig.dev2)
    try:
        stub2 = ingest_stub(channel2)
        # Ids are scoped to their camera: the same id on dev2's camera is refused outright,
        # before anything is looked up (no oracle), and dev1's partial stays untouched.
        theirs = Segment.make("cam9", segment_id=seg.segment_id, size=2 * CHUNK)
        refused(lambda: rig.query(theirs, stub2), grpc.StatusCode.INVALID_ARGUMENT, "namespace")
        refused(
            lambda: upload(stub2, theirs, offset=CHUNK),
            grpc.StatusCode.INVALID_ARGUMENT,
            "namespace",
        )
        # Its own camera's id of the same suffix is a different segment: staged from 0.
        own = Segment.make("cam9", segment_id="cam9" + seg.segment_id[4:], size=2 * CHUNK)
        assert rig.query(own, stub2) == 0
        refused(lambda: upload(stub2, own, offset=CHUNK), grpc.StatusCode.ABORTED, "from 0")
    finally:
        channel2.close()
    assert rig.query(seg) == CHUNK


# --- overload -------------------------------------------------------------------------------


def test_a_flood_beyond_the_limit_is_refused_with_resource_exhausted(rig: Rig) -> None:
    limit = MAX_UPLOADS
    release = threading.Event()
    segs = [Segment.make("cam1", size=2 * CHUNK) for _ in range(limit + 3)]
    futures = [rig.stub.Upload.future(_held_stream(s, 1, release), timeout=30) for s in segs]
    try:
        wait_until(
            lambda: sum(f.done() for f in futures) == 3, 10, "the excess uploads to be refused"
        )
        refused_ = [f for f in futures if f.done()]
        for f in refused_:
            assert f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many concurrent uploads" in (f.details() or "")
        # The others are still streaming; QueryOffset still gets a thread.
        assert rig.query(Segment.make("cam1")) == 0
    finally:
        release.set()
    for f in futures:
        f.cancel()
    wait_until(rig.idle, 10, "every slot to be free")
    rig.assert_serving()
