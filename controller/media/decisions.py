"""Pure decisions of the H.264 rendition service: which rendition a client gets, whether a
request is served, joins a conversion, starts one or waits, and what the cache evicts.

No I/O here; `renditions.py` is the shell that acts on these answers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

ORIGINAL = "original"
H264 = "h264"
RENDITIONS = (ORIGINAL, H264)
BROWSER_CODECS = frozenset({"h264"})  # what every browser decodes (MSE, hls.js)


def parse_rendition(value: str | None) -> str:
    """The rendition a playlist request asks for (None: the original); ValueError otherwise."""
    if value is None or value == "":
        return ORIGINAL
    if value not in RENDITIONS:
        raise ValueError(f"rendition {value[:32]!r} is not one of {', '.join(RENDITIONS)}")
    return value


def segment_rendition(requested: str, video_codec: str) -> str:
    """What one segment's URL in a playlist points at.

    A client that asked for the original gets the original (ffmpeg, VLC, browsers with HEVC:
    bit-exact footage). A client that asked for H.264 gets the original where the segment is
    H.264 already (no conversion, no cost) and the converted rendition otherwise, including
    when the codec is unknown (the probe failed): the converter then says what is wrong.
    """
    if requested == ORIGINAL or video_codec in BROWSER_CODECS:
        return ORIGINAL
    return H264


class Admission(Enum):
    SERVE = "serve"  # the rendition is in the cache
    JOIN = "join"  # another request is converting this segment: wait for its result
    START = "start"  # convert now (a slot is free)
    WAIT = "wait"  # every slot is busy: wait for one, or give up at the deadline


def admit(cached: bool, in_flight: bool, active: int, limit: int) -> Admission:
    """One conversion serves every viewer: a cached or in-flight segment is never converted
    twice; a new conversion starts only below `limit` concurrent ones."""
    if cached:
        return Admission.SERVE
    if in_flight:
        return Admission.JOIN
    return Admission.START if active < limit else Admission.WAIT


def default_concurrency(cpu_count: int | None, configured: int = 0) -> int:
    """`configured` when set (> 0), else half the CPUs, at least one."""
    if configured > 0:
        return configured
    return max(1, (cpu_count or 1) // 2)


def retry_after_s(wait_s: float, expected_s: float) -> int:
    """Retry-After for a refused request: about one conversion's time, at least 1 s."""
    return max(1, round(max(wait_s, expected_s)))


@dataclass(frozen=True, slots=True)
class CacheEntry:
    name: str
    size: int
    last_used: float  # any monotonic-enough stamp (file mtime)


def choose_evictions(
    entries: Iterable[CacheEntry], max_bytes: int, keep: Collection[str] = ()
) -> list[str]:
    """Least recently used first, until the cache fits in `max_bytes`; never an entry in
    `keep` (being written or served right now). May still exceed the bound when everything
    left is kept."""
    items = sorted(entries, key=lambda e: (e.last_used, e.name))
    total = sum(e.size for e in items)
    out: list[str] = []
    for entry in items:
        if total <= max_bytes:
            break
        if entry.name in keep:
            continue
        out.append(entry.name)
        total -= entry.size
    return out
