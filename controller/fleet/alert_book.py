"""The active alerts and the raise/clear log of one controller (the leader's, with replicas).

Not thread-safe on its own: FleetService calls it under its fleet lock. The rules are in
`alerts` (pure); this keeps what they decided, logs each raise and clear once, and hands the
changes to whoever stores them for the other replicas (`on_change`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable

from controller.fleet import alerts as al
from controller.fleet import monitor as mo

log = logging.getLogger("controller.fleet.service")

# (raised, cleared) after an evaluation that changed something.
ChangeHook = Callable[[list[al.Alert], list[al.Alert]], None]


class AlertBook:
    def __init__(self, rules: al.AlertRules, log_kept: int, on_change: ChangeHook | None) -> None:
        self._rules = rules
        self._on_change = on_change
        self.active: dict[str, dict[al.AlertKey, al.Alert]] = {}
        self.log: collections.deque[tuple[str, al.Alert]] = collections.deque(maxlen=log_kept)

    def time_sensitive(self, r: mo.DeviceRecord, now_us: int) -> bool:
        """Whether time passing alone may raise or clear one of this device's alerts."""
        if not r.online or r.device_id in self.active:
            return True
        recent_us = int(self._rules.reconnect_window_s * mo.US)
        if r.connects_us and len(r.connects_us) > 1 and now_us - r.connects_us[-2] < recent_us:
            return True
        return bool(r.last_flood_us)

    def evaluate(self, record: mo.DeviceRecord, now_us: int) -> None:
        """Raise and clear `record`'s alerts as the rules say now."""
        active = self.active.get(record.device_id, {})
        current = al.evaluate(record, now_us, self._rules)
        if not current and not active:
            return
        raised, cleared = al.reconcile(active, record.device_id, current, now_us)
        if not raised and not cleared:
            return
        updated = {k: v for k, v in active.items() if k in current}
        for a in raised:
            updated[a.key] = a
            self.log.append(("raised", a))
            log.warning("alert raised: %s %s %s: %s", a.device_id, a.kind, a.camera_id, a.detail)
        for a in cleared:
            self.log.append(("cleared", a))
            log.info("alert cleared: %s %s %s", a.device_id, a.kind, a.camera_id)
        if updated:
            self.active[record.device_id] = updated
        else:
            self.active.pop(record.device_id, None)
        if self._on_change is not None:
            self._on_change(raised, cleared)

    def seed(self, alerts: Iterable[al.Alert]) -> None:
        """Take over alerts raised before (by the previous leader): active, not raised again."""
        seeded: dict[str, dict[al.AlertKey, al.Alert]] = {}
        for a in alerts:
            seeded.setdefault(a.device_id, {})[a.key] = a
        self.active = seeded

    def current(self, device_id: str | None = None) -> list[al.Alert]:
        return [
            a
            for dev, active in self.active.items()
            if device_id is None or dev == device_id
            for a in active.values()
        ]
