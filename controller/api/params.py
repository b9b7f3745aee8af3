"""Parsing of query parameters the routes share (pure).

Times come as ISO 8601 (`2026-01-01T00:00:00Z`, an offset, or naive = UTC) or as integer
Unix microseconds, read by controller/times.py like every command's times, so a URL copied
from the console and a script both work.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller import times

MAX_US = 253_402_300_799_000_000  # 9999-12-31T23:59:59Z
MAX_TIME_CHARS = 40


def parse_time_us(text: str, name: str) -> int:
    """Microseconds since the epoch, or ValueError naming the parameter. A time without a zone
    is UTC here (controller/times.py: the API's callers are programs)."""
    text = text.strip()
    if not text or len(text) > MAX_TIME_CHARS:
        raise ValueError(f"{name}: expected an ISO 8601 time or unix microseconds")
    if "T" in text and " " in text:  # a '+' offset decoded from a query as a space
        text = text.replace(" ", "+")
    try:
        value = times.parse_time_us(text, naive=UTC)
    except times.TimeError:
        raise ValueError(f"{name}: {text[:40]!r} is not an ISO 8601 time") from None
    if not 0 <= value <= MAX_US:
        raise ValueError(f"{name}: time out of range")
    return value


def iso_us(us: int) -> str:
    """An ISO 8601 UTC rendering of microseconds (for messages)."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds")
