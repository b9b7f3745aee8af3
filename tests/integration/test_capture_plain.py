"""The writer's plain-frame path (edge_agent/segmenter/plain.py) changes nothing: the same
real media with B-frames and audio, its timestamps disturbed (wobble, jumps both ways, lost
frames, untimed and reordered packets), live and from a file, through a writer with the path
and one without give the same segment files, byte for byte, the same gaps, events, GOP and
dropped-packet count."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import av
import pytest

from edge_agent.capture import SegmentWriter
from edge_agent.clock import SystemClock
from edge_agent.segmenter import CutPolicy
from edge_agent.store import SegmentBuffer
from tests.integration.test_capture_media import T0, write_media


def _disturbed(src: Path, seed: int) -> list[tuple[Any, int | None]]:
    """The file's packets (video and audio) with timestamps disturbed the same way for the
    same seed, each with an arrival time 40 ms apart plus jitter."""
    rng = random.Random(seed)
    out: list[tuple[Any, int | None]] = []
    shift, now = 0, T0
    container = av.open(str(src))
    for packet in container.demux():
        if not packet.size:
            continue
        now += rng.randrange(0, 45_000)
        if packet.stream.type == "video":
            roll = rng.random()
            if roll < 0.01:
                shift += rng.choice([90_000 * 3, -90_000 * 2])  # a jump, either way
            elif roll < 0.03:
                continue  # a lost frame (sometimes a keyframe)
            elif roll < 0.04:
                packet.pts = None  # untimed: never muxed
            elif roll < 0.05 and packet.pts is not None and packet.dts is not None:
                packet.pts = packet.dts - 1  # shown before decoded: never muxed
            wobble = rng.choice([0, 0, 0, 1, -1, 2])
            if packet.pts is not None:
                packet.pts += shift + wobble
            if packet.dts is not None:
                packet.dts += shift + wobble
        out.append((packet, now))
    return out


def _record(tmp: Path, src: Path, seed: int, live: bool, plain: bool) -> dict[str, Any]:
    events: list[tuple[str, str]] = []
    with SegmentBuffer.open(tmp / "buffer", 10**9, SystemClock()) as buffer:
        writer = SegmentWriter(
            "c1", buffer, CutPolicy.for_seconds(2), on_event=lambda k, d: events.append((k, d))
        )
        taken = [0]
        if plain:
            real = writer._plain

            def counted(*args: Any) -> bool | None:
                written = real(*args)
                taken[0] += written is not None
                return written

            writer._plain = counted  # type: ignore[method-assign,assignment]
        else:
            writer._plain = lambda *_: None  # type: ignore[method-assign]
        with av.open(str(src)) as c:
            video = c.streams.video[0]
            audio = c.streams.audio[0] if c.streams.audio else None
            writer.begin(video, T0, live=live, earliest_us=T0 if live else None, audio=audio)
            for packet, now in _disturbed(src, seed):
                writer.feed(packet, now if live else None)
            writer.end(truncated=True)
        segments = buffer.segments("c1")
        return {
            "segments": [(s.start_us, s.duration_us, s.flags, s.sha256) for s in segments],
            "gaps": [(g.start_us, g.end_us, g.reason) for g in buffer.gaps("c1")],
            "events": events,
            "gop_s": writer.gop_s,
            "untimed": writer.untimed_dropped,
            "plain": taken[0] > 0 if plain else True,
        }


@pytest.mark.parametrize("live", [True, False])
def test_plain_frames_give_the_same_segments_as_the_full_path(tmp_path: Path, live: bool) -> None:
    src = write_media(tmp_path / "a.ts", audio="aac", seconds=12, bframes=2)
    for seed in range(2):
        with_path = _record(tmp_path / f"p{seed}", src, seed, live, plain=True)
        without = _record(tmp_path / f"f{seed}", src, seed, live, plain=False)
        assert len(with_path["segments"]) >= 3
        assert with_path["plain"]  # the path was taken
        assert with_path == without
