"""Reading UploadRequests off the wire (controller/ingest/wire.py): a chunk message becomes a
view of the received bytes, anything else is what the protobuf parser makes of it."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from controller.ingest.wire import ChunkRequest, parse_upload_request
from protos.vigil.v1 import ingest_pb2


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 1024 * 1024])
def test_a_chunk_message_is_a_view_of_the_received_bytes(size: int) -> None:
    chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
    raw = ingest_pb2.UploadRequest(chunk=chunk).SerializeToString()
    parsed = parse_upload_request(raw)
    assert isinstance(parsed, ChunkRequest)
    assert bytes(parsed.chunk) == chunk
    assert parsed.chunk.obj is raw  # not copied
    assert parsed.WhichOneof("part") == "chunk"


def test_a_header_goes_through_protobuf() -> None:
    header = ingest_pb2.SegmentHeader(segment_id="s1", camera_id="c1", size_bytes=9)
    raw = ingest_pb2.UploadRequest(header=header).SerializeToString()
    parsed = parse_upload_request(raw)
    assert isinstance(parsed, ingest_pb2.UploadRequest)
    assert parsed.header.segment_id == "s1"


def test_anything_but_a_lone_chunk_field_is_left_to_protobuf() -> None:
    chunk = ingest_pb2.UploadRequest(chunk=b"abc").SerializeToString()
    header = ingest_pb2.UploadRequest(
        header=ingest_pb2.SegmentHeader(segment_id="s2")
    ).SerializeToString()
    # Two fields of the oneof: the last one wins, as protobuf says.
    parsed = parse_upload_request(chunk + header)
    assert isinstance(parsed, ingest_pb2.UploadRequest)
    assert parsed.WhichOneof("part") == "header"
    parsed = parse_upload_request(header + chunk)
    assert isinstance(parsed, ingest_pb2.UploadRequest)
    assert parsed.chunk == b"abc"
    assert parse_upload_request(b"").WhichOneof("part") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"\x12\x05abc",  # shorter than its length
        b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a varint that never ends
        b"\x12",  # no length at all
    ],
)
def test_malformed_messages_are_refused_as_before(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_upload_request(raw)
