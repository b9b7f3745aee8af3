"""Segment fetches, aggregated: one audit entry per (grant, camera, user) per flush interval.

A viewer fetches a segment every few seconds; recording each would make the audit log mostly
noise and its append lock a bottleneck. The playlist request (the decision) is audited on its
own; the fetches that follow are counted here and flushed as one `segment_fetch` entry with
the count, bytes, first/last time and first/last segment. Bounded: when `max_keys` distinct
keys are pending, `record` says a flush is due now.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from controller.audit.chain import AuditEvent

# The client address of the HTTP request being served ("" outside one): set by the API's
# `note_source` dependency, read when a refusal before authentication is aggregated. A
# context variable, so concurrent requests each see their own.
REQUEST_SOURCE: ContextVar[str] = ContextVar("vigil_request_source", default="")

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


# Refusals before authentication (no session, a bad session, throttled logins), aggregated.
#
# Each is cheap for a client to send and would otherwise be one serialised audit write each:
# 300 unauthenticated playlist requests were 300 rows in 18 s, slowing every other writer.
# The first refusal of a kind from a source is written at once (an operator sees it
# immediately); the rest are counted and written as one row per (source, action, reason) when
# drained (the audit checkpoint, every minute). Memory is bounded: past `max_keys` distinct
# keys, new sources are counted under the source "*".

OVERFLOW_SOURCE = "*"
MAX_SAMPLES = 5

RefusalKey = tuple[str, str, str]  # (source, action, reason)


@dataclass(slots=True)
class _RefusalTally:
    count: int
    first_us: int
    last_us: int
    samples: list[str]


class RefusalAggregator:
    """Counts refusals per (source, action, reason); not thread-safe (callers lock)."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._seen: dict[RefusalKey, _RefusalTally] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def record(self, source: str, action: str, reason: str, sample: str, now_us: int) -> bool:
        """Note one refusal; True when it is the first of its key (write it now), False when
        it was only counted (it will be part of the aggregated row)."""
        key = (source, action, reason)
        if key not in self._seen and len(self._seen) >= self._max_keys:
            key = (OVERFLOW_SOURCE, action, reason)
        tally = self._seen.get(key)
        if tally is None:
            self._seen[key] = _RefusalTally(0, now_us, now_us, [])
            return True
        tally.count += 1
        tally.last_us = now_us
        if sample and sample not in tally.samples and len(tally.samples) < MAX_SAMPLES:
            tally.samples.append(sample)
        return False

    def drain(self) -> list[AuditEvent]:
        """One event per key that counted refusals since its first (and forget every key)."""
        events = [
            AuditEvent(
                action=action,
                outcome="refused",
                reason=reason,
                detail={
                    "aggregated": True,
                    "source": source,
                    "count": t.count,
                    "first_us": t.first_us,
                    "last_us": t.last_us,
                    "samples": list(t.samples),
                },
            )
            for (source, action, reason), t in sorted(self._seen.items())
            if t.count > 0
        ]
        self._seen.clear()
        return events
