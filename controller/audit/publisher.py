"""Periodic signed checkpoints, each published to the MQTT witness topic (retained).

Every `interval_s` (`[audit] checkpoint_interval_s`, default 60 s) the controller signs the
head of the audit chain when it grew since the last checkpoint, then publishes the newest
checkpoint (its own, or one another replica or the every-64-entries rule made) retained on
`vigil/v1/city/audit/checkpoint`. Publishing the newest one on every tick, changed or not,
re-creates the retained message after a broker restart (the managed broker keeps nothing on
disk). A stop signs and publishes a last checkpoint, so a clean shutdown leaves nothing
uncovered. A failing tick is logged and retried at the next one: the controller never stops
for the witness.

`controller.components.audit_witness` builds it for `vigil-controller serve`, publishing
through the fleet component's `publish_retained` (started after the fleet, stopped before it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from controller.audit.chain import Checkpoint
from controller.audit.log import AuditError, AuditLog
from controller.audit.witness import AUDIT_WITNESS_TOPIC, witness_dict, witness_payload
from controller.runtime import PeriodicTask

log = logging.getLogger("vigil.audit.witness")

Publish = Callable[[str, bytes], bool]  # (topic, payload) -> queued for the broker


class CheckpointWitness:
    """start()/stop() component: sign checkpoints on a timer and publish the newest."""

    def __init__(self, audit: AuditLog, publish: Publish | None, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._audit = audit
        self._publish = publish
        self._interval = interval_s
        # The last tick at stop: the last entries before a clean stop are covered and witnessed.
        self._task = PeriodicTask(
            "audit-witness", interval_s, self._tick, run_at_stop=True, join_timeout_s=30.0
        )
        self.last_published: Checkpoint | None = None
        self.cut: str | None = None  # why the log is known to have been cut (sticky)

    def run_once(self) -> Checkpoint | None:
        """Sign the head if the chain grew, publish the newest checkpoint; return it.

        If the log no longer holds the checkpoint published last (someone cut or rewrote it
        under the running controller), that is logged as an error at every tick and the last
        good checkpoint stays the published witness: the cut log's own checkpoints would
        otherwise replace the evidence of the cut."""
        made = self._audit.checkpoint()
        newest = made or self._audit.latest_checkpoint()
        if made is not None:
            log.info("audit checkpoint signed at entry %d", made.seq)
        last = self.last_published
        if self.cut is None and last is not None and newest != last:
            if self._audit.checkpoint_at(last.seq) != last:
                self.cut = (
                    f"the audit log no longer contains the checkpoint at entry {last.seq} "
                    f"published earlier (newest now: {newest.seq if newest else 'none'}): "
                    "it was cut or rewritten"
                )
        if self.cut is not None:
            log.error("%s; the witness keeps the last good checkpoint", self.cut)
            newest = last
        if newest is not None and self._publish is not None:
            if self._publish(AUDIT_WITNESS_TOPIC, witness_payload(newest)):
                self.last_published = newest
        return newest

    def _tick(self) -> None:
        try:
            self.run_once()
        except AuditError as exc:
            log.warning("audit checkpoint failed (retrying in %.0f s): %s", self._interval, exc)
        except Exception:
            log.exception("audit witness tick failed; will retry")

    def start(self) -> None:
        self._task.start()

    def stop(self) -> None:
        self._task.stop()


def current_witness(audit: AuditLog) -> dict[str, Any] | None:
    """The checkpoint an export manifest carries: the head signed now if the chain grew,
    else the newest one (None before the first entry). AuditError stops the export."""
    newest = audit.checkpoint() or audit.latest_checkpoint()
    return None if newest is None else witness_dict(newest)
