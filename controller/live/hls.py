"""Short-segment HLS of a live feed, for browsers without Media Source Extensions (iPhone
Safari plays HLS natively). Pure: chunks in, a rolling window of segments and its playlist out.

The feed's chunks are MPEG-TS from the agent's muxer, one frame each, and a keyframe's chunk
starts with PAT/PMT (FFmpeg repeats them there; edge_agent/live/mux.py), so a segment is
simply the chunks from one keyframe chunk to the next one at least `target_s` later: every
segment starts with PAT, PMT and a keyframe, as HLS wants. A segment's duration is the PTS
distance between its first chunk and the next segment's (90 kHz clock). The window keeps the
last `keep` segments; older ones are gone (a player that falls that far behind re-reads the
playlist and jumps to the live edge).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

TS = 188
PTS_HZ = 90_000


def video_start(chunk: bytes) -> tuple[int, bool] | None:
    """(PTS, keyframe) of the first video PES that starts in this chunk, or None.

    A keyframe is the random access indicator FFmpeg's muxer sets in the adaptation field of
    a keyframe's first TS packet (PAT/PMT alone do not say it: they also repeat every 0.1 s).
    """
    for i in range(0, len(chunk) - TS + 1, TS):
        if chunk[i] != 0x47 or not chunk[i + 1] & 0x40:
            continue
        at, key = i + 4, False
        if chunk[i + 3] & 0x20:
            key = chunk[i + 4] > 0 and bool(chunk[i + 5] & 0x40)
            at += 1 + chunk[i + 4]
        pes = chunk[at : i + TS]
        if len(pes) < 14 or pes[:3] != b"\x00\x00\x01" or pes[3] & 0xF0 != 0xE0:
            continue
        if not pes[7] & 0x80:
            return None
        p = pes[9:14]
        pts = ((p[0] >> 1) & 7) << 30 | p[1] << 22 | (p[2] >> 1) << 15 | p[3] << 7 | p[4] >> 1
        return pts, key
    return None


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int
    data: bytes
    duration_s: float


class HlsWindow:
    """One live feed cut into segments of at least `target_s`, the last `keep` of them kept."""

    def __init__(self, target_s: float = 1.0, keep: int = 6) -> None:
        self._target = int(target_s * PTS_HZ)
        self._segments: deque[Segment] = deque(maxlen=keep)
        self._parts: list[bytes] = []
        self._start_pts: int | None = None
        self._next_seq = 0

    def add(self, chunk: bytes) -> None:
        start = video_start(chunk)
        key = start is not None and start[1]
        if self._start_pts is None:
            if start is None or not key:
                return  # wait for a keyframe to start at
            self._start_pts, self._parts = start[0], [chunk]
            return
        if start is not None and key:
            elapsed = (start[0] - self._start_pts) % (1 << 33)
            if elapsed > 60 * PTS_HZ:  # a new stream (the agent restarted): start afresh
                self._start_pts, self._parts = start[0], [chunk]
                return
            if elapsed >= self._target:
                seg = Segment(self._next_seq, b"".join(self._parts), elapsed / PTS_HZ)
                self._segments.append(seg)
                self._next_seq += 1
                self._start_pts, self._parts = start[0], [chunk]
                return
        self._parts.append(chunk)

    def restart(self) -> None:
        """The feed restarted (a new stream, new timestamps): cut cleanly at its keyframe."""
        self._start_pts, self._parts = None, []

    def ready(self, segments: int = 2) -> bool:
        return len(self._segments) >= segments

    def segment(self, seq: int) -> bytes | None:
        for seg in self._segments:
            if seg.seq == seq:
                return seg.data
        return None

    def playlist(self, uri: Callable[[int], str]) -> str:
        """The live playlist (no ENDLIST) of the segments in the window."""
        segs = list(self._segments)
        target = max((math.ceil(s.duration_s) for s in segs), default=1)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{segs[0].seq if segs else 0}",
        ]
        for s in segs:
            lines += [f"#EXTINF:{s.duration_s:.3f},", uri(s.seq)]
        return "\n".join(lines) + "\n"
