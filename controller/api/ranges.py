"""HTTP Range requests for segment bytes (pure: header text and object size in, decision out).

Players seek inside MPEG-TS segments with `Range: bytes=a-b`. One range is honoured (the
first-byte-pos, suffix and open-ended forms); anything the RFC lets a server ignore (another
unit, several ranges, a syntactically invalid header) gets the whole object with 200, and a
range that starts past the end gets 416 with `Content-Range: bytes */size` (RFC 9110 §14).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_RANGE_HEADER = 200


class RangeNotSatisfiable(Exception):
    """The range lies wholly outside the object."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for an object of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def _digits(text: str) -> int | None:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, None for the whole object, or RangeNotSatisfiable."""
    if header is None or len(header) > MAX_RANGE_HEADER:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    if not first.strip():  # suffix form: the last N bytes
        n = _digits(last)
        if n is None:
            return None
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - n), size - 1)
    start = _digits(first)
    if start is None:
        return None
    if last.strip():
        end = _digits(last)
        if end is None or end < start:
            return None
    else:
        end = size - 1
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size - 1))
