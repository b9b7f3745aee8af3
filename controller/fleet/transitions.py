"""What the fleet's history keeps: transitions derived from one message, as plain rows (pure).

The fleet's message path calls these under its lock with the record before and after a
message; they compare a few fields and return rows only when something changed, so the
common health report (nothing changed) costs a tuple comparison. The rows go to the history
writer's queue (history_writer.py), never to the database from here.

States: a device is online or offline (reason clean | will | timeout); a camera is online
(streaming), stale (connected but no picture moving: stalled, no keyframe yet) or offline
(reason: the agent's camera state, e.g. unreachable, auth_failed); a camera's picture is ok
or frozen | black | blurred | occluded (image health events); an alert is raised or cleared
(reason: its kind).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from controller.catalog.history_models import LossEventRow, StateChangeRow
from controller.fleet import alerts as al
from controller.fleet import monitor as mo
from controller.fleet.loss_facts import LossFacts, loss_facts
from protos.vigil.v1 import fleet_pb2

STALE_STATES = frozenset({"stalled", "no_keyframe_yet", "starting"})
IMAGE_FAULTS = frozenset({"frozen", "black", "blurred", "occluded"})
# Event kinds of image health (vigil.v1.Event.Kind): detail names the fault.
IMAGE_FAULT_KIND = fleet_pb2.Event.KIND_IMAGE_FAULT
IMAGE_OK_KIND = fleet_pb2.Event.KIND_IMAGE_OK
log = logging.getLogger(__name__)


def camera_state(cam: fleet_pb2.CameraHealth) -> tuple[str, str]:
    """(online | stale | offline, reason) of one camera in a health report."""
    if not cam.connected:
        return "offline", cam.state or "disconnected"
    if cam.state in STALE_STATES:
        return "stale", cam.state
    if cam.state in ("", "streaming"):
        return "online", ""
    return "offline", cam.state


CameraStates = dict[str, tuple[str, str]]  # camera id -> (state, reason) last written


def device_changes(
    before: mo.DeviceRecord | None,
    after: mo.DeviceRecord,
    written: CameraStates,
    now_us: int,
) -> tuple[list[StateChangeRow], CameraStates]:
    """The device's own online/offline flip and its cameras' changes against what was last
    written for them (`written`); returns the rows and the new `written`.

    A device going offline takes its cameras with it (nothing of theirs reaches the city);
    its next health report writes them again as they are.
    """
    out: list[StateChangeRow] = []
    was_online = before.online if before is not None else None
    if after.online != was_online and (before is not None or after.online):
        out.append(
            StateChangeRow(
                subject="device",
                device_id=after.device_id,
                state="online" if after.online else "offline",
                reason=after.reason,
                at_us=now_us,
            )
        )
    if not after.online:
        now = {c: ("offline", f"device {after.reason or 'offline'}") for c in written}
    elif after.health is not (before.health if before is not None else None):
        now = {c.camera_id: camera_state(c) for c in after.health.cameras}  # type: ignore[union-attr]
    else:
        return out, written
    if now == written:
        return out, written
    for camera_id, (state, reason) in sorted(now.items()):
        if written.get(camera_id) != (state, reason):
            out.append(
                StateChangeRow(
                    subject="camera",
                    device_id=after.device_id,
                    camera_id=camera_id,
                    state=state,
                    reason=reason[:256],
                    at_us=now_us,
                )
            )
    return out, now


def event_facts(
    ev: fleet_pb2.Event, now_us: int, cameras: Collection[str] = ()
) -> tuple[list[StateChangeRow], list[LossEventRow]]:
    """Losses (unsent evictions, one or a batch: loss_facts.py) and image-health transitions
    carried by one event; `cameras`: those the device's birth announced (empty: unchecked).
    Losses on cameras the birth did not list are left out (see `event_history`)."""
    changes, facts = event_history(ev, now_us, cameras)
    return changes, facts.rows


def event_history(
    ev: fleet_pb2.Event, now_us: int, cameras: Collection[str] = ()
) -> tuple[list[StateChangeRow], LossFacts]:
    """`event_facts` with the losses whole: those on announced cameras and the unannounced
    ones the history writer keeps only for cameras the catalog registers to the device."""
    if ev.kind == fleet_pb2.Event.KIND_UNSENT_EVICTED:
        facts = loss_facts(ev, now_us, cameras)
        for fact_id, why in facts.refused[:3]:
            log.warning("fleet: loss %r from %s refused: %s", fact_id, ev.device_id, why)
        return [], facts
    kind = int(ev.kind)
    if kind in (IMAGE_FAULT_KIND, IMAGE_OK_KIND):
        fault = ev.detail.split(":", 1)[0].strip()
        state = "ok" if kind == IMAGE_OK_KIND else (fault if fault in IMAGE_FAULTS else "fault")
        row = StateChangeRow(
            subject="image",
            device_id=ev.device_id,
            camera_id=ev.camera_id,
            state=state,
            reason=ev.detail[:256],
            at_us=ev.at_unix_us or now_us,
        )
        return [row], LossFacts()
    return [], LossFacts()


def alert_changes(
    raised: Iterable[al.Alert], cleared: Iterable[al.Alert], now_us: int
) -> list[StateChangeRow]:
    rows = [
        StateChangeRow(
            subject="alert",
            device_id=a.device_id,
            camera_id=a.camera_id,
            state=state,
            reason=str(a.kind),
            at_us=a.raised_us if state == "raised" else now_us,
        )
        for state, alerts in (("raised", raised), ("cleared", cleared))
        for a in alerts
    ]
    return rows
