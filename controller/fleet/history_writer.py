"""The fleet history's batched writer: transitions and losses queued in memory by the MQTT
path, written to the catalog every `flush_s` by its own thread.

Why a queue: the fleet's message path never touches the database (docs/architecture.md, "The
fleet view over several replicas"); a transition is appended under a small lock of its own and
costs a list append. A failed write keeps the batch and retries at the next flush (losses are
idempotent by device and fact id, so a write that succeeded but looked failed is harmless);
after each written batch of losses `on_losses_written` is called (the fleet's loss receipts);
the queue is bounded, and what overflows is counted and logged, never silently dropped.
Losses on cameras the device's birth did not list (taken out of its config with unsent
segments still buffered) are stored if the catalog registers the camera to the device, else
dropped, counted (`dropped_losses`) and logged; both are confirmed to the agent.
`stop()` writes what is left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from controller.catalog.history_models import LossEventRow, StateChangeRow

log = logging.getLogger(__name__)
R = TypeVar("R")


class HistoryStore(Protocol):
    def record_changes(self, rows: Sequence[StateChangeRow]) -> None: ...
    def record_losses(self, rows: Sequence[LossEventRow]) -> int: ...
    def record_owned_losses(self, rows: Sequence[LossEventRow]) -> list[LossEventRow]: ...


class HistoryWriter:
    def __init__(self, store: HistoryStore, flush_s: float = 1.0, max_queued: int = 200_000):
        self._store = store
        self._flush_s = flush_s
        self._max = max_queued
        self._lock = threading.Lock()
        self._changes: list[StateChangeRow] = []
        self._losses: list[LossEventRow] = []
        self._unannounced: list[LossEventRow] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.overflowed = 0
        self.written_changes = 0
        self.written_losses = 0
        # Losses on cameras neither the device's birth listed nor the catalog registers to
        # it: not stored, confirmed all the same (the agent would resend them forever).
        self.dropped_losses = 0
        self.failures = 0
        # Called (on the writer thread) with each batch of losses once it is in the catalog.
        self.on_losses_written: Callable[[Sequence[LossEventRow]], None] | None = None

    def note(
        self,
        changes: Sequence[StateChangeRow],
        losses: Sequence[LossEventRow] = (),
        unannounced: Sequence[LossEventRow] = (),
    ) -> None:
        """Queue rows (any thread; no I/O). `unannounced`: losses on cameras the device's
        birth did not list, stored only if the catalog registers the camera to the device."""
        if not changes and not losses and not unannounced:
            return
        with self._lock:
            room = self._max - len(self._changes) - len(self._losses) - len(self._unannounced)
            facts = len(losses) + len(unannounced)
            if len(changes) + facts > room:
                # Losses first: they are the facts nothing else records.
                kept = _take(self._losses, losses, room)
                kept += _take(self._unannounced, unannounced, room - kept)
                kept += _take(self._changes, changes, room - kept)
                self.overflowed += len(changes) + facts - kept
                return
            self._changes.extend(changes)
            self._losses.extend(losses)
            self._unannounced.extend(unannounced)

    def flush(self) -> None:
        """Write what is queued; on failure put it back in front (raises the error)."""
        with self._lock:
            changes, self._changes = self._changes, []
            losses, self._losses = self._losses, []
            unannounced, self._unannounced = self._unannounced, []
        try:
            if losses:
                self._store.record_losses(losses)
                self.written_losses += len(losses)
                written, losses = losses, []
                self._written(written)
            if unannounced:
                self._unowned(unannounced, self._store.record_owned_losses(unannounced))
                written, unannounced = unannounced, []
                self._written(written)  # the dropped ones too: they are settled
            if changes:
                self._store.record_changes(changes)
                self.written_changes += len(changes)
        except Exception:
            with self._lock:
                self._losses[:0] = losses
                self._unannounced[:0] = unannounced
                self._changes[:0] = changes
            raise

    def _unowned(self, asked: Sequence[LossEventRow], dropped: Sequence[LossEventRow]) -> None:
        self.written_losses += len(asked) - len(dropped)
        self.dropped_losses += len(dropped)
        for row in dropped[:3]:
            log.warning(
                "fleet history: loss %r from %s dropped: camera %r is neither in its birth nor "
                "registered to it (confirmed, so the agent stops resending it)",
                row.fact_id,
                row.device_id,
                row.camera_id,
            )

    def _written(self, losses: Sequence[LossEventRow]) -> None:
        if self.on_losses_written is None:
            return
        try:
            self.on_losses_written(losses)
        except Exception:  # a receipt not sent is resent for by the agent
            log.exception("fleet history: loss receipts failed")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fleet-history", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._flush_s):
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:
            self.failures += 1
            if self.failures % 30 == 1:
                log.exception("fleet history: write failed (%d); retrying", self.failures)
        if self.overflowed:
            log.error("fleet history: %d transition(s) not kept (queue full)", self.overflowed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._flush_logged()


def _take(queue: list[R], rows: Sequence[R], room: int) -> int:
    """Queue as many of `rows` as `room` allows; how many that was."""
    taken = rows[: max(room, 0)]
    queue.extend(taken)
    return len(taken)
