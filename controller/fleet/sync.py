"""A replica's side of the shared fleet state: what it owes the database and what it reads.

Runs on the fleet's sync thread, never under the fleet lock for I/O: the service hands over
its health outbox and alert changes (swapped out under the lock, a few pointer moves), this
writes them, then reads the other replicas' health rows and the leader's alerts, which the
service folds in under the lock (pure merges only).

Failed writes are kept for the next round (newest report per device wins), so a database
hiccup delays the shared view by a round or two instead of losing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.fleet import history as hi
from controller.fleet import monitor as mo
from controller.fleet.alerts import Alert, AlertKey
from controller.fleet.shared import HealthRow, SharedFleetState
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger(__name__)

# Re-read this much before the newest row seen: replicas' clocks differ, and a row written
# late by a slow replica carries its (earlier) receive time.
REREAD_MARGIN_US = 10_000_000
# The leader rewrites the whole alert table every this many sync rounds (~30 s at 2 s):
# heals a write lost to a database hiccup or made by a leader that had not noticed it lost.
RESYNC_ROUNDS = 15


@dataclass(frozen=True, slots=True)
class SharedHealth:
    """A decoded health row, ready to merge."""

    device_id: str
    health: fleet_pb2.Health
    seen_us: int
    skew_s: float


def newer(a: HealthRow, b: HealthRow | None) -> bool:
    """Whether report `a` supersedes `b` (pure: session first, then sequence number)."""
    return b is None or (a.session, a.seq) > (b.session, b.seq)


class ReplicaSync:
    """Outbox and cursors of one replica; `state` is the shared database's fleet tables."""

    def __init__(self, state: SharedFleetState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._outbox: dict[str, HealthRow] = {}
        self._raised: dict[AlertKey, Alert] = {}
        self._cleared: set[AlertKey] = set()
        self._cursor_us = 0
        self._rounds = 0
        self._pulled: dict[str, tuple[int, int]] = {}  # device -> (session, seq) last read
        self.alerts: list[Alert] = []  # the leader's, as last read (followers serve these)
        self.written = 0
        self.merged_rows = 0

    # ---- called under the fleet lock (cheap) ----------------------------------------
    def note_health(self, row: HealthRow) -> None:
        with self._lock:
            if newer(row, self._outbox.get(row.device_id)):
                self._outbox[row.device_id] = row

    def note_alerts(self, raised: list[Alert], cleared: list[Alert]) -> None:
        with self._lock:
            for a in cleared:
                self._raised.pop(a.key, None)
                self._cleared.add(a.key)
            for a in raised:
                self._cleared.discard(a.key)
                self._raised[a.key] = a

    # ---- called on the sync thread (I/O) ---------------------------------------------
    def flush_health(self) -> None:
        with self._lock:
            batch, self._outbox = self._outbox, {}
        if not batch:
            return
        try:
            self.state.write_health(list(batch.values()))
            self.written += len(batch)
        except Exception:
            with self._lock:  # keep them for the next round, unless superseded meanwhile
                for device_id, row in batch.items():
                    if newer(row, self._outbox.get(device_id)):
                        self._outbox[device_id] = row
            raise

    def flush_alerts(self, epoch: int) -> None:
        with self._lock:
            raised, cleared = self._raised, self._cleared
            self._raised, self._cleared = {}, set()
        if not raised and not cleared:
            return
        try:
            if not self.state.apply_alerts(raised.values(), cleared, epoch):
                log.warning(
                    "fleet: a newer leadership owns the alerts; %d change(s) dropped",
                    len(raised) + len(cleared),
                )
        except Exception:
            with self._lock:
                for key, a in raised.items():
                    if key not in self._cleared:
                        self._raised.setdefault(key, a)
                for key in cleared:
                    if key not in self._raised:
                        self._cleared.add(key)
            raise

    def take_over_alerts(self, epoch: int) -> list[Alert] | None:
        """Claim the alert table for leadership `epoch`; the alerts raised so far (to take
        over, not raise again), or None when a newer leadership holds it."""
        if not self.state.claim_alerts(epoch):
            return None
        self._rounds = 0
        return self.pull_alerts()

    def resync_due(self) -> bool:
        """Every RESYNC_ROUNDS rounds the leader rewrites the whole alert table from memory."""
        self._rounds += 1
        return self._rounds % RESYNC_ROUNDS == 0

    def forget_alert_changes(self) -> None:
        """Lost the leadership: what this replica would have written is no longer its to say."""
        with self._lock:
            self._raised, self._cleared = {}, set()

    def pull_health(self) -> list[SharedHealth]:
        rows = self.state.health_since(max(0, self._cursor_us - REREAD_MARGIN_US))
        out: list[SharedHealth] = []
        for r in rows:
            self._cursor_us = max(self._cursor_us, r.seen_us)
            if self._pulled.get(r.device_id) == (r.session, r.seq):
                continue  # re-read within the margin: already handed over
            self._pulled[r.device_id] = (r.session, r.seq)
            msg = fleet_pb2.Health()
            try:
                msg.ParseFromString(r.payload)
            except Exception:  # written by a replica that decoded it; never trust bytes
                log.warning("fleet: undecodable shared health row for %s", r.device_id[:64])
                continue
            out.append(SharedHealth(r.device_id, msg, r.seen_us, r.skew_s))
        self.merged_rows += len(out)
        return out

    def pull_alerts(self) -> list[Alert]:
        self.alerts = self.state.alerts()
        return self.alerts


def fold_health(
    records: dict[str, mo.DeviceRecord],
    history: dict[str, tuple[hi.HealthPoint, ...]],
    rows: Iterable[SharedHealth],
    policy: hi.HistoryPolicy,
) -> list[mo.DeviceRecord]:
    """Merge health other replicas received into `records` and `history` (in place, under
    the fleet lock); returns the records it changed. A device not known here yet (no state
    seen) is left to its next report."""
    merged: list[mo.DeviceRecord] = []
    for row in rows:
        record = records.get(row.device_id)
        if record is None:
            continue
        new = mo.merge_shared_health(record, row.health, row.seen_us, row.skew_s)
        if new is None:
            continue
        records[row.device_id] = new
        history[row.device_id] = hi.add_sample(
            history.get(row.device_id, ()), row.health, row.seen_us, policy
        )
        merged.append(new)
    return merged


def every(
    stop: threading.Event,
    interval_s: float,
    fn: Callable[[], object],
    name: str,
    failed: Callable[[str], None],
) -> threading.Thread:
    """A started daemon thread `name` running `fn` every `interval_s` until `stop` is set. A
    failure is counted (`failed(name)`) and logged: the first, then about one in 30 in a row
    (a database down for minutes is one log line a minute at a 2 s interval, not thirty)."""

    def loop() -> None:
        failures = 0
        while not stop.wait(interval_s):
            try:
                fn()
                failures = 0
            except Exception:
                failed(name)
                failures += 1
                if failures % 30 == 1:
                    log.exception("%s failed (%d in a row); retrying", name, failures)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
