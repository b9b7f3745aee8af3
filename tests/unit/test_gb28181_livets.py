"""A device channel's frames as live MPEG-TS chunks (controller/gb28181/livets.py): output
starts at a keyframe, every keyframe chunk is a valid start (PAT/PMT), `reset` starts over."""

from __future__ import annotations

import io

import av
import numpy as np

from controller.gb28181.livets import LiveTs
from controller.gb28181.ps import H264, AccessUnit


def encoded(frames: int = 30, gop: int = 10) -> list[AccessUnit]:
    """H.264 access units (libx264, annex B) with 90 kHz times, 25 fps."""
    sink = io.BytesIO()
    with av.open(sink, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25, options={"g": str(gop), "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        units = []
        for n in range(frames + 5):
            frame = None
            if n < frames:
                frame = av.VideoFrame.from_ndarray(
                    np.full((120, 160, 3), n * 8 % 256, np.uint8), format="rgb24"
                )
                frame.pts = n
            for p in stream.encode(frame):
                pts = int(p.pts) * 3600
                units.append(AccessUnit(H264, pts, pts, bool(p.is_keyframe), bytes(p)))
            if frame is None:
                break
    return units


def decoded(data: bytes) -> int:
    with av.open(io.BytesIO(data), "r", format="mpegts") as c:
        return sum(1 for _ in c.decode(video=0))


def test_chunks_start_at_a_keyframe_and_every_keyframe_chunk_is_a_start() -> None:
    units = encoded()
    chunks: list[tuple[bytes, bool, str]] = []
    ts = LiveTs(lambda d, k, c: chunks.append((d, k, c)))
    for au in units[3:]:  # joined mid-GOP: frames before the next keyframe are skipped
        ts.unit(au)
    assert chunks[0][1] and {c for _, _, c in chunks} == {"h264"}
    assert len(chunks) == 20  # from frame 10
    assert decoded(b"".join(d for d, _, _ in chunks)) == 20
    starts = [n for n, (_, key, _) in enumerate(chunks) if key]
    assert starts == [0, 10]
    assert decoded(b"".join(d for d, _, _ in chunks[10:])) == 10  # a viewer joining there


def test_reset_starts_over_at_the_next_keyframe_with_new_times() -> None:
    units = encoded(20)
    chunks: list[bytes] = []
    ts = LiveTs(lambda d, k, c: chunks.append(d))
    for au in units[:5]:
        ts.unit(au)
    ts.reset()  # a new INVITE session: its PTS start again from another origin
    for au in units[:5] + units[10:]:
        ts.unit(au)
    assert len(chunks) == 5 + 5 + 10
    assert decoded(b"".join(chunks[5:])) == 15
