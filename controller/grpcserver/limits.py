"""Limits per kind of call and per device, so a full server refuses new work at once
(RESOURCE_EXHAUSTED) instead of stalling the agents already connected.

Why per kind: lease streams, uploads and short unary calls (inventories, lease reports,
resume queries) need different things. A stream costs memory and nothing else while idle;
an upload holds a worker thread while it runs; a unary call holds one briefly. Each kind
gets its own budget, so ten thousand open streams never take an upload's thread, and a burst
of uploads never delays an inventory. Per device, so one agent (broken or hostile, past
mutual TLS all the same) cannot take a kind's whole budget.

`Gate` is confined to the event-loop thread (acquired and released there), so it needs no
lock; `refusal` is the pure decision.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Budget:
    """How many calls of one kind may be in flight: in all, and per device."""

    kind: str  # "uploads", "lease streams", "calls": used in the refusal sentence
    total: int
    per_device: int
    # A device that already holds one may open another even when the total is reached: a
    # lease stream's successor replaces it (the scheduler closes the older one).
    replaces: bool = False


def refusal(budget: Budget, device_id: str, total: int, held: int) -> str | None:
    """None to admit one more call of `device_id`, else the sentence telling it why not.

    `total`: calls of this kind in flight; `held`: those of this device.
    """
    if held >= budget.per_device:
        return (
            f"too many concurrent {budget.kind} from device {device_id} ({held}, limit "
            f"{budget.per_device} per device); retry later"
        )
    if total >= budget.total and not (budget.replaces and held > 0):
        return f"too many concurrent {budget.kind} (limit {budget.total}); retry later"
    return None


class Gate:
    """In-flight counters of one kind of call (event-loop thread only)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._held: dict[str, int] = {}
        self.in_flight = 0
        self.refused = 0

    def held(self, device_id: str) -> int:
        return self._held.get(device_id, 0)

    def acquire(self, device_id: str) -> str | None:
        """Take one place for `device_id`; the refusal sentence when there is none."""
        why = refusal(self.budget, device_id, self.in_flight, self.held(device_id))
        if why is not None:
            self.refused += 1
            return why
        self.in_flight += 1
        self._held[device_id] = self.held(device_id) + 1
        return None

    def release(self, device_id: str) -> None:
        self.in_flight -= 1
        left = self._held[device_id] - 1
        if left:
            self._held[device_id] = left
        else:
            del self._held[device_id]
