"""Reading the times people and programs type: one grammar for every command and the API.

Accepted: ISO 8601 with `Z` or an offset (`2026-01-01T08:00:00+08:00`), integer Unix
microseconds where the caller allows them, and `now`, `now-15m`, `now+2h` (s, m, h, d) where
the caller passes the current time. Inside, everything is UTC microseconds.

A time without a zone is ambiguous by eight hours in Vigil's country, so the caller says what it
means (`naive`):

- typed by a person at a command (`grant mint --from`, `audit-search --since`): Asia/Shanghai
  local time, `LOCAL_ZONE` (docs/configuration.md, "Times");
- `footage request` (a deadline read eight hours wrong is a missed deadline): refused, with the
  fix in the message (`naive=None`);
- the HTTP API's `from`/`to` (scripts and the console, which sends microseconds): UTC, as
  documented in the OpenAPI description and pinned by tests/unit/test_api_cores.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Asia/Shanghai")

_RELATIVE = re.compile(r"now(?:([+-])(\d{1,7})([smhd]))?")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class TimeError(ValueError):
    """A time that cannot be read; the message quotes it and says what is accepted."""


def parse_time_us(
    text: str,
    *,
    naive: tzinfo | None = LOCAL_ZONE,
    now_us: int | None = None,
    epoch_us: bool = True,
) -> int:
    """Microseconds since the epoch for `text`.

    `naive`: the zone of a time written without one, or None to refuse it. `now_us`: allow
    `now[+-N{s,m,h,d}]` relative to it. `epoch_us`: allow integer microseconds.
    """
    value = text.strip()
    if now_us is not None:
        rel = _RELATIVE.fullmatch(value)
        if rel:
            if not rel.group(1):
                return now_us
            seconds = int(rel.group(2)) * _UNIT_S[rel.group(3)]
            return now_us + (seconds if rel.group(1) == "+" else -seconds) * 1_000_000
    if epoch_us and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        forms = "an ISO 8601 time" + (" or unix microseconds" if epoch_us else "")
        forms += " or now[+-N(s|m|h|d)]" if now_us is not None else ""
        raise TimeError(f"{text!r} is not {forms}") from None
    if when.tzinfo is None:
        if naive is None:
            raise TimeError(f"{text!r} has no UTC offset (write e.g. {value}+08:00 or {value}Z)")
        when = when.replace(tzinfo=naive)
    return int(when.timestamp() * 1_000_000)


def iso_utc(us: int) -> str:
    """ISO 8601 in UTC, to the second (what commands print)."""
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds")
