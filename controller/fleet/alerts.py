"""Alert rules as pure functions over a device record; raised once and cleared once.

`evaluate` says which conditions hold right now; `reconcile` compares that with the alerts
already active and returns the ones to raise and the ones to clear. An alert that stays true
is never raised again, and one that is false is cleared exactly once, so operators and
notification channels see one "raised" and one "cleared" per incident.

Cameras are judged by the state their agent reports (`CameraHealth.state`), so an alert names
what to do: `camera_unsupported` (reconfigure the camera's codec), `camera_auth_failed` (fix
its credentials), `camera_unreachable` (visit it), `camera_stale` (it stopped sending). A
camera that has produced no frame since its agent started is given `startup_grace_s` before a
transient state (starting, unreachable, ...) alerts; a refusal that waiting cannot fix
(unsupported codec, wrong password) alerts at once. `long_gop` is information: the camera's
keyframes come too rarely for its segment target, so its segments are longer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from controller.fleet.monitor import US, DeviceRecord
from protos.vigil.v1 import fleet_pb2


class AlertKind(StrEnum):
    DEVICE_OFFLINE = "device_offline"
    CAMERA_STALE = "camera_stale"
    DISK_LOW = "disk_low"
    BACKLOG_NEAR_EVICTION = "backlog_near_eviction"
    REPEATED_RECONNECTS = "repeated_reconnects"
    CLOCK_SKEW = "clock_skew"
    FLOODING = "flooding"
    CAMERA_UNSUPPORTED = "camera_unsupported"
    CAMERA_AUTH_FAILED = "camera_auth_failed"
    CAMERA_UNREACHABLE = "camera_unreachable"
    LONG_GOP = "long_gop"


INFO_KINDS = frozenset({AlertKind.LONG_GOP})
# Camera states that get their own alert kind; every other non-streaming state is "stale".
STATE_KINDS: dict[str, AlertKind] = {
    "unsupported_codec": AlertKind.CAMERA_UNSUPPORTED,
    "auth_failed": AlertKind.CAMERA_AUTH_FAILED,
    "unreachable": AlertKind.CAMERA_UNREACHABLE,
}
# Refusals that waiting will not fix: alerted even during the start-up grace.
DEFINITIVE_STATES = frozenset({"unsupported_codec", "auth_failed"})
# Connected states judged by the age of the last frame.
FLOWING_STATES = frozenset({"streaming", "no_keyframe_yet"})


def level_of(kind: str) -> str:
    """ "info" for alerts that need no action (long_gop), else "warning"."""
    return "info" if kind in INFO_KINDS else "warning"


@dataclass(frozen=True, slots=True)
class AlertRules:
    offline_after_s: float = 120.0
    frame_age_s: float = 30.0
    disk_low_bytes: int = 1024**3
    # Alert when the oldest unsent segment would be evicted within this long.
    eviction_eta_s: float = 6 * 3600.0
    reconnects: int = 5
    reconnect_window_s: float = 600.0
    # The agent's clock measured over RPC (NTP-like, with an error bound) may be off by this.
    clock_skew_s: float = 2.0
    # Without an RPC measure, the health timestamp's age on arrival is used; it includes the
    # message's delay, so it must exceed clock_skew_s by this margin too.
    mqtt_skew_margin_s: float = 5.0
    flood_window_s: float = 60.0
    # A camera with no frame since its agent started raises no transient alert this long.
    startup_grace_s: float = 30.0
    # A GOP this much over the segment target is long (timestamps wobble by a few ticks).
    gop_slack_s: float = 0.25


# (device_id, kind, camera_id): one alert per device, kind and camera.
AlertKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Alert:
    device_id: str
    kind: str
    camera_id: str
    detail: str
    raised_us: int

    @property
    def key(self) -> AlertKey:
        return (self.device_id, self.kind, self.camera_id)

    @property
    def level(self) -> str:
        return level_of(self.kind)


def _age(cam: fleet_pb2.CameraHealth) -> str:
    if cam.frame_age_s < 0:
        return "no frame since the agent started"
    return f"last frame {cam.frame_age_s:.0f} s ago"


def camera_alert(
    cam: fleet_pb2.CameraHealth, uptime_s: float, rules: AlertRules
) -> tuple[AlertKind, str] | None:
    """The alert one camera's health calls for, with its detail, or None."""
    state = cam.state
    if not state:  # an older agent: only `connected` and the frame age are known
        if not cam.connected or cam.frame_age_s > rules.frame_age_s:
            where = "disconnected" if not cam.connected else "connected"
            return AlertKind.CAMERA_STALE, f"{where}, {_age(cam)}"
        return None
    reason = f": {cam.reason}" if cam.reason else ""
    if state in FLOWING_STATES:
        if cam.frame_age_s > rules.frame_age_s:
            return AlertKind.CAMERA_STALE, f"{state}, {_age(cam)}"
        return None
    kind = STATE_KINDS.get(state, AlertKind.CAMERA_STALE)
    if state in DEFINITIVE_STATES:
        return kind, f"{state}{reason}"
    if cam.frame_age_s < 0 and 0 <= uptime_s < rules.startup_grace_s:
        return None  # the agent has just started: give the camera time to connect
    return kind, f"{state}{reason} ({_age(cam)})"


def gop_alert(gop_s: float, target_s: float, rules: AlertRules) -> str | None:
    """The long-GOP detail when keyframes come too rarely for the segment target."""
    if gop_s <= 0 or target_s <= 0 or gop_s <= target_s + rules.gop_slack_s:
        return None
    return (
        f"a keyframe every {gop_s:.1f} s, longer than the {target_s:.0f} s segment target: "
        f"segments last about {gop_s:.0f} s"
    )


def skew_alert(r: DeviceRecord, rules: AlertRules) -> str | None:
    """The clock-skew detail: from the agent's RPC measure when it has one, else (coarser)
    from the health timestamp's age on arrival over MQTT."""
    h = r.health
    if h is not None and h.clock_offset_known:
        skew, err = h.clock_offset_ms / 1000, h.clock_offset_error_ms / 1000
        if abs(skew) - err <= rules.clock_skew_s:
            return None
        side = "ahead of" if skew > 0 else "behind"
        return (
            f"device clock {abs(skew):.1f} s {side} the controller's "
            f"(±{err * 1000:.0f} ms, measured over RPC; threshold {rules.clock_skew_s:g} s)"
        )
    if abs(r.clock_skew_s) > rules.clock_skew_s + rules.mqtt_skew_margin_s:
        return f"device clock off by {r.clock_skew_s:+.1f} s (health timestamp over MQTT)"
    return None


def evaluate(r: DeviceRecord, now_us: int, rules: AlertRules) -> dict[AlertKey, str]:
    """Conditions that hold now for one device: key -> human-readable detail."""
    out: dict[AlertKey, str] = {}
    dev = r.device_id
    if not r.online:
        if r.changed_us and now_us - r.changed_us > rules.offline_after_s * US:
            down = (now_us - r.changed_us) / US
            out[(dev, AlertKind.DEVICE_OFFLINE, "")] = f"offline ({r.reason}) for {down:.0f} s"
        # Health figures of an offline device are stale: judge them again when it is back.
        return out
    h = r.health
    if h is not None:
        targets = {c.camera_id: c.segment_seconds for c in r.birth.cameras} if r.birth else {}
        for cam in h.cameras:
            found = camera_alert(cam, h.uptime_s, rules)
            if found is not None:
                out[(dev, found[0], cam.camera_id)] = found[1]
            gop = gop_alert(cam.gop_s, targets.get(cam.camera_id, 0), rules)
            if gop is not None:
                out[(dev, AlertKind.LONG_GOP, cam.camera_id)] = gop
        if h.disk_total_bytes and h.disk_free_bytes < rules.disk_low_bytes:
            out[(dev, AlertKind.DISK_LOW, "")] = f"{h.disk_free_bytes} bytes free"
        if h.segments_unsent > 0 and 0 <= h.eviction_eta_s < rules.eviction_eta_s:
            out[(dev, AlertKind.BACKLOG_NEAR_EVICTION, "")] = (
                f"{h.segments_unsent} unsent segments, oldest evicted in {h.eviction_eta_s:.0f} s"
            )
    skew = skew_alert(r, rules)
    if skew is not None:
        out[(dev, AlertKind.CLOCK_SKEW, "")] = skew
    window_start = now_us - int(rules.reconnect_window_s * US)
    recent = sum(1 for t in r.connects_us if t >= window_start)
    if recent >= rules.reconnects:
        out[(dev, AlertKind.REPEATED_RECONNECTS, "")] = (
            f"{recent} connections in {rules.reconnect_window_s:.0f} s"
        )
    if r.last_flood_us and now_us - r.last_flood_us < rules.flood_window_s * US:
        out[(dev, AlertKind.FLOODING, "")] = f"{r.flood_dropped} messages dropped by rate limit"
    return out


def reconcile(
    active: Mapping[AlertKey, Alert],
    device_id: str,
    current: Mapping[AlertKey, str],
    now_us: int,
) -> tuple[list[Alert], list[Alert]]:
    """(to raise, to clear) for one device, given its active alerts and conditions now."""
    raised = [
        Alert(key[0], key[1], key[2], detail, now_us)
        for key, detail in current.items()
        if key not in active
    ]
    cleared = [a for key, a in active.items() if key[0] == device_id and key not in current]
    return raised, cleared
