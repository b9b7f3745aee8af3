"""Reading an `UploadRequest` off the wire without copying its chunk.

Why: almost every message of an upload is a chunk (`bytes chunk = 2` of the `part` oneof),
and the protobuf runtime copies it twice on the way in: into the message when it parses,
and into a fresh `bytes` object each time `.chunk` is read (the metrics interceptor reads it
once, the servicer once more). Measured on the benchmark's 1 MiB chunks, those copies (and
the allocation of 1 MiB objects) were a fifth of the controller's CPU while receiving.

A chunk message is one field: tag 0x12, a varint length, the bytes, and nothing after them.
`parse_upload_request` recognises exactly that shape and returns a `ChunkRequest` whose
`chunk` is a memoryview of the received message (no copy). Anything else (the header,
unknown or repeated fields, anything malformed) goes through the protobuf parser as before,
so what is accepted and what is refused (DecodeError) does not change.
"""

from __future__ import annotations

from protos.vigil.v1 import ingest_pb2

_CHUNK_TAG = 0x12  # field 2, wire type 2 (length-delimited)
_MAX_VARINT_BYTES = 10


class ChunkRequest:
    """An UploadRequest that is a chunk: `chunk` views the received bytes."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: memoryview) -> None:
        self.chunk = chunk

    def WhichOneof(self, name: str) -> str | None:  # the protobuf method, for generic code
        return "chunk" if name == "part" else None


UploadMessage = ChunkRequest | ingest_pb2.UploadRequest


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it), or (-1, pos) if it is not a complete varint."""
    value = 0
    shift = 0
    for i in range(pos, min(len(raw), pos + _MAX_VARINT_BYTES)):
        byte = raw[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    return -1, pos


def parse_upload_request(raw: bytes) -> UploadMessage:
    """The request deserializer of `vigil.v1.Ingest/Upload` (see the module doc)."""
    if raw and raw[0] == _CHUNK_TAG:
        length, start = _varint(raw, 1)
        if length >= 0 and start + length == len(raw):
            return ChunkRequest(memoryview(raw)[start:])
    return ingest_pb2.UploadRequest.FromString(raw)
