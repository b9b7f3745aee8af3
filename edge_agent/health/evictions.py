"""Eviction reports that survive a controller restart: sent until the controller recorded them.

An unsent segment the buffer evicted is a loss the city must know about. The buffer keeps an
eviction record (durable, in its SQLite index) with a `reported` flag; this module decides
when each unreported record goes out on MQTT and when it may be marked reported:

- only when the controller says it has stored the loss (a `cmd/loss_recorded` command naming
  the record's fact id, the evicted segment's id), never on the broker's PUBACK alone: a
  broker acknowledges to whoever published, and a controller that is down, restarting or
  killed before its batched write would otherwise lose the report for good;
- a record not confirmed within `resend_s` of its last sending is sent again (the controller
  records a fact once per device and fact id, so a resend never counts twice); after every
  (re)connection all unconfirmed records are due at once;
- at most `batch` reports per step, packed `per_message` to an MQTT message (one event
  carrying several loss facts, `Event.losses`; the controller stores and confirms each on
  its own), so a backlog of evictions made while offline goes out in a few messages within
  the controller's per-device rate limit (2 messages/s, burst 40) instead of one each.

`EvictionReports` is plain state driven by the reporter thread; `receipt()` is the one
method called from paho's network thread (it only appends under a lock).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from edge_agent.model import EvictionRecord

LOSS_RECORDED_VERB = "loss_recorded"
DEFAULT_RESEND_S = 30.0
DEFAULT_BATCH = 200
# Facts per message: the controller refuses a batch over 64 (controller/fleet/loss_facts.py);
# 50 facts of 128-character ids are ~12 kB, far below its 64 KiB payload limit.
DEFAULT_PER_MESSAGE = 50


def fact_id(rec: EvictionRecord) -> str:
    """The stable name of an eviction's loss, the same on every resend and every session."""
    return rec.segment_id


class EvictionReports:
    def __init__(
        self,
        resend_s: float = DEFAULT_RESEND_S,
        batch: int = DEFAULT_BATCH,
        per_message: int = DEFAULT_PER_MESSAGE,
    ) -> None:
        if resend_s <= 0 or batch < 1 or not 1 <= per_message <= 64:
            raise ValueError("resend_s must be positive, batch at least 1, per_message 1-64")
        self.resend_s = resend_s
        self._batch = batch
        self._per_message = per_message
        self._sent_at: dict[int, float] = {}  # record id -> monotonic time last sent
        self._lock = threading.Lock()
        self._receipts: set[str] = set()
        self.sent_total = 0
        self.resent_total = 0
        self.confirmed_total = 0

    def receipt(self, fact_ids: Sequence[str]) -> None:
        """The controller stored these facts (any thread)."""
        with self._lock:
            self._receipts.update(fact_ids)

    def has_receipts(self) -> bool:
        with self._lock:
            return bool(self._receipts)

    def reconnected(self) -> None:
        """A new connection: whatever is unconfirmed goes out again at once."""
        self._sent_at.clear()

    def confirmed(self, pending: Sequence[EvictionRecord]) -> list[int]:
        """Record ids of `pending` (the buffer's unreported evictions) the controller has
        confirmed: to mark reported. Receipts matching none of them are forgotten."""
        with self._lock:
            receipts, self._receipts = self._receipts, set()
        done = [r.record_id for r in pending if r.was_uploaded or fact_id(r) in receipts]
        for record_id in done:
            self._sent_at.pop(record_id, None)
        self.confirmed_total += len(done)
        return done

    def due(self, pending: Sequence[EvictionRecord], now: float) -> list[EvictionRecord]:
        """The unsent evictions of `pending` to send now, oldest first, at most `batch`."""
        out: list[EvictionRecord] = []
        for rec in pending:
            if len(out) >= self._batch:
                break
            if rec.was_uploaded:
                continue
            last = self._sent_at.get(rec.record_id)
            if last is None or now - last >= self.resend_s:
                out.append(rec)
        return out

    def messages(self, due: Sequence[EvictionRecord]) -> list[Sequence[EvictionRecord]]:
        """`due` cut into the messages it goes out in (`per_message` facts each)."""
        n = self._per_message
        return [due[i : i + n] for i in range(0, len(due), n)]

    def sent(self, rec: EvictionRecord, now: float) -> None:
        if rec.record_id in self._sent_at:
            self.resent_total += 1
        self.sent_total += 1
        self._sent_at[rec.record_id] = now

    def forget_missing(self, pending: Sequence[EvictionRecord]) -> None:
        """Drop send times of records no longer pending (marked reported elsewhere)."""
        keep = {r.record_id for r in pending}
        for record_id in [i for i in self._sent_at if i not in keep]:
            del self._sent_at[record_id]
