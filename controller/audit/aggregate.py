"""Segment fetches, aggregated: one audit entry per (grant, camera, user) per flush interval.

A viewer fetches a segment every few seconds; recording each would make the audit log mostly
noise and its append lock a bottleneck. The playlist request (the decision) is audited on its
own; the fetches that follow are counted here and flushed as one `segment_fetch` entry with
the count, bytes, first/last time and first/last segment. Bounded: when `max_keys` distinct
keys are pending, `record` says a flush is due now.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.audit.chain import AuditEvent

FLUSH_INTERVAL_US = 60 * 1_000_000
MAX_KEYS = 10_000


@dataclass(slots=True)
class _Tally:
    count: int
    bytes: int
    first_us: int
    last_us: int
    first_segment: str
    last_segment: str


class FetchAggregator:
    """Counts fetches in memory until `drain`; not thread-safe (callers hold their own lock)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._pending: dict[tuple[str, str, str, str], _Tally] = {}
        self._since_us: int | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def record(
        self,
        grant_id: str,
        camera_id: str,
        user: str,
        org: str,
        segment_id: str,
        size_bytes: int,
        now_us: int,
    ) -> bool:
        """Count one fetch; True when a flush is due (interval over, or too many keys)."""
        key = (grant_id, camera_id, user, org)
        tally = self._pending.get(key)
        if tally is None:
            self._pending[key] = _Tally(1, size_bytes, now_us, now_us, segment_id, segment_id)
        else:
            tally.count += 1
            tally.bytes += size_bytes
            tally.last_us = now_us
            tally.last_segment = segment_id
        if self._since_us is None:
            self._since_us = now_us
        return self.due(now_us)

    def due(self, now_us: int) -> bool:
        if not self._pending:
            return False
        assert self._since_us is not None
        return len(self._pending) >= self._max_keys or now_us - self._since_us >= FLUSH_INTERVAL_US

    def drain(self) -> list[AuditEvent]:
        """The pending tallies as audit events (and forget them)."""
        events = [
            AuditEvent(
                action="segment_fetch",
                actor_user=user,
                actor_org=org,
                camera_id=camera,
                grant_id=grant,
                detail={
                    "count": t.count,
                    "bytes": t.bytes,
                    "first_us": t.first_us,
                    "last_us": t.last_us,
                    "first_segment": t.first_segment,
                    "last_segment": t.last_segment,
                },
            )
            for (grant, camera, user, org), t in sorted(self._pending.items())
        ]
        self._pending.clear()
        self._since_us = None
        return events
