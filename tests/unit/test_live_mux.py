"""The agent's live muxer: MPEG-TS from packets as they come, always starting at a keyframe,
and skipping to the next keyframe when the uplink refused a chunk (no stale backlog)."""

from __future__ import annotations

import io
from typing import Any

import av
from av.packet import Packet
from av.video.stream import VideoStream

from edge_agent.live.mux import TsMuxer


def encoded(frames: int = 60, gop: int = 10) -> tuple[VideoStream, list[Packet[Any]]]:
    """H.264 packets encoded in memory (and demuxed again, as capture sees them)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": str(gop), "bf": "0"}
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 7) % 256]) * plane.buffer_size)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    buf.seek(0)
    container = av.open(buf, mode="r", format="mpegts")
    video = container.streams.video[0]
    return video, [p for p in container.demux(video) if p.size]


def frames_of(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        return list(container.decode(video=0))


def test_output_starts_at_a_keyframe_and_decodes() -> None:
    stream, packets = encoded()
    chunks: list[tuple[bytes, bool]] = []

    def emit(data: bytes, key: bool) -> bool:
        chunks.append((data, key))
        return True

    muxer = TsMuxer(stream, emit)
    first_key = next(i for i, p in enumerate(packets) if p.is_keyframe and i > 0)
    for packet in packets[first_key - 3 :]:  # join mid-GOP, as a viewer does
        muxer.feed(packet)
    muxer.close()
    assert chunks[0][1] and chunks[0][0][0] == 0x47
    assert len(chunks) == len(packets) - first_key  # one chunk per packet from the keyframe
    frames = frames_of(b"".join(c for c, _ in chunks))
    assert frames[0].key_frame and len(frames) == len(chunks)
    keyed = [c for c, key in chunks if key]
    assert all(frames_of(c) for c in keyed)  # each keyframe chunk carries PAT/PMT again


def test_a_refused_chunk_skips_to_the_next_keyframe() -> None:
    stream, packets = encoded()
    accepted: list[tuple[bytes, bool]] = []
    refuse = {3}  # the uplink queue is full for the 4th chunk

    def emit(data: bytes, key: bool) -> bool:
        n = len(accepted) + len(refused)
        if n in refuse:
            refused.append(data)
            return False
        accepted.append((data, key))
        return True

    refused: list[bytes] = []
    muxer = TsMuxer(stream, emit)
    for packet in packets:
        muxer.feed(packet)
    muxer.close()
    assert [key for _, key in accepted[:4]] == [True, False, False, True]  # resumed at a key
    # GOP of 10: chunk 3 was refused and packets 4-9 were never muxed (not stale video later)
    assert len(accepted) == len(packets) - 7 and len(refused) == 1
