"""HLS media playlists from catalog segments (pure: segments in, text out).

Only footage the grant covers is listed: a segment is shown when it overlaps the requested
range and lies *wholly* inside the grant's window (segments are remuxed, never cut, so a
segment straddling the window edge would leak footage outside it). Gaps are never joined:
where the next segment does not start where the previous one ended (beyond a tolerance of a
few frames), or the catalog flagged it (gap, overlap, chain break), the playlist says
EXT-X-DISCONTINUITY and restates EXT-X-PROGRAM-DATE-TIME, so players and investigators see
the jump in wall-clock time. Segment URLs come from a `url_for(segment_id)` callable (see
`UrlSigner.url_maker`), so every playlist fetch re-signs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

GAP_TOLERANCE_US = 250_000
DISCONTINUITY_FLAGS = frozenset({"gap", "overlap", "chain_break"})
LIVE_WINDOW = 6  # segments in a live playlist (hls.js wants >= 3 target durations)
HLS_VERSION = 3


class TimedSegment(Protocol):
    """A segment's identity and recorded time: all that selection needs."""

    @property
    def segment_id(self) -> str: ...

    @property
    def start_us(self) -> int: ...

    @property
    def end_us(self) -> int: ...


class SegmentRecord(TimedSegment, Protocol):
    """What the builder reads from a segment; the catalog's `SegmentRow` fits as is."""

    @property
    def flag(self) -> str: ...


T = TypeVar("T", bound=TimedSegment)


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A plain segment record for callers and tests that do not have catalog rows."""

    segment_id: str
    start_us: int
    end_us: int
    flag: str = ""


class NoFootageError(LookupError):
    """Nothing the grant covers was recorded in the range asked for."""


def select_segments(
    segments: Iterable[T],
    from_us: int,
    to_us: int,
    window_from_us: int,
    window_to_us: int,
) -> list[T]:
    """Segments overlapping [from, to) and wholly inside the grant window [wfrom, wto),
    oldest first, each id once."""
    seen: set[str] = set()
    out: list[T] = []
    for seg in segments:
        if seg.end_us <= from_us or seg.start_us >= to_us:
            continue
        if seg.start_us < window_from_us or seg.end_us > window_to_us:
            continue
        if seg.segment_id in seen or seg.end_us <= seg.start_us:
            continue
        seen.add(seg.segment_id)
        out.append(seg)
    out.sort(key=lambda s: (s.start_us, s.segment_id))
    return out


def discontinuities(
    segments: Sequence[SegmentRecord], tolerance_us: int = GAP_TOLERANCE_US
) -> list[bool]:
    """For each segment: does playback jump (gap, overlap, flagged) right before it?"""
    marks: list[bool] = []
    prev_end: int | None = None
    for seg in segments:
        jump = prev_end is not None and (
            abs(seg.start_us - prev_end) > tolerance_us or seg.flag in DISCONTINUITY_FLAGS
        )
        marks.append(jump)
        prev_end = seg.end_us
    return marks


def _pdt(us: int) -> str:
    stamp = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    return "#EXT-X-PROGRAM-DATE-TIME:" + stamp.isoformat(timespec="milliseconds")


def _body(
    segments: Sequence[SegmentRecord],
    url_for: Callable[[str], str],
    header: list[str],
    tolerance_us: int,
) -> list[str]:
    longest = max(s.end_us - s.start_us for s in segments)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest / 1_000_000))}",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        *header,
    ]
    append = lines.append
    prev_end: int | None = None
    for seg in segments:
        start = seg.start_us
        if prev_end is None:
            append(_pdt(start))
        elif abs(start - prev_end) > tolerance_us or seg.flag in DISCONTINUITY_FLAGS:
            append("#EXT-X-DISCONTINUITY")
            append(_pdt(start))
        end = seg.end_us
        append(f"#EXTINF:{(end - start) / 1_000_000:.3f},")
        append(url_for(seg.segment_id))
        prev_end = end
    return lines


def build_vod_playlist(
    segments: Sequence[SegmentRecord],
    url_for: Callable[[str], str],
    *,
    complete: bool = True,
    tolerance_us: int = GAP_TOLERANCE_US,
) -> str:
    """A playback playlist of `segments` (already selected, oldest first).

    `complete`: the range lies wholly in the past (VOD, ends with ENDLIST); otherwise an EVENT
    playlist the player reloads while the range is still being recorded/uploaded."""
    if not segments:
        raise NoFootageError("no recorded footage in the granted range")
    kind = "VOD" if complete else "EVENT"
    header = ["#EXT-X-MEDIA-SEQUENCE:0", f"#EXT-X-PLAYLIST-TYPE:{kind}"]
    lines = _body(segments, url_for, header, tolerance_us)
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def build_live_playlist(
    segments: Sequence[SegmentRecord],
    url_for: Callable[[str], str],
    *,
    first_sequence: int,
    discontinuity_sequence: int = 0,
    window: int = LIVE_WINDOW,
    tolerance_us: int = GAP_TOLERANCE_US,
) -> str:
    """A sliding live playlist of the newest `window` of `segments` (oldest first).

    HLS needs a stable numbering across reloads: `first_sequence` is the media sequence number
    of the first segment of `segments` (e.g. the camera's count of stored segments that start
    before it), `discontinuity_sequence` the number of discontinuities before it."""
    if not segments:
        raise NoFootageError("no live footage yet")
    if first_sequence < 0 or discontinuity_sequence < 0 or window < 1:
        raise ValueError("sequence numbers must be >= 0 and the window >= 1")
    skipped = max(0, len(segments) - window)
    marks = discontinuities(segments, tolerance_us)
    disc = discontinuity_sequence + sum(marks[1 : skipped + 1])
    newest = segments[skipped:]
    header = [
        f"#EXT-X-MEDIA-SEQUENCE:{first_sequence + skipped}",
        f"#EXT-X-DISCONTINUITY-SEQUENCE:{disc}",
    ]
    return "\n".join(_body(newest, url_for, header, tolerance_us)) + "\n"
