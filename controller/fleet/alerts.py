"""Alert rules as pure functions over a device record; raised once and cleared once.

`evaluate` says which conditions hold right now; `reconcile` compares that with the alerts
already active and returns the ones to raise and the ones to clear. An alert that stays true
is never raised again, and one that is false is cleared exactly once, so operators and
notification channels see one "raised" and one "cleared" per incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from controller.fleet.monitor import US, DeviceRecord


class AlertKind(StrEnum):
    DEVICE_OFFLINE = "device_offline"
    CAMERA_STALE = "camera_stale"
    DISK_LOW = "disk_low"
    BACKLOG_NEAR_EVICTION = "backlog_near_eviction"
    REPEATED_RECONNECTS = "repeated_reconnects"
    CLOCK_SKEW = "clock_skew"
    FLOODING = "flooding"


@dataclass(frozen=True, slots=True)
class AlertRules:
    offline_after_s: float = 120.0
    frame_age_s: float = 30.0
    disk_low_bytes: int = 1024**3
    # Alert when the oldest unsent segment would be evicted within this long.
    eviction_eta_s: float = 6 * 3600.0
    reconnects: int = 5
    reconnect_window_s: float = 600.0
    clock_skew_s: float = 30.0
    flood_window_s: float = 60.0


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
        for cam in h.cameras:
            if not cam.connected or cam.frame_age_s > rules.frame_age_s:
                state = "disconnected" if not cam.connected else "connected"
                out[(dev, AlertKind.CAMERA_STALE, cam.camera_id)] = (
                    f"{state}, last frame {cam.frame_age_s:.0f} s ago"
                )
        if h.disk_total_bytes and h.disk_free_bytes < rules.disk_low_bytes:
            out[(dev, AlertKind.DISK_LOW, "")] = f"{h.disk_free_bytes} bytes free"
        if h.segments_unsent > 0 and 0 <= h.eviction_eta_s < rules.eviction_eta_s:
            out[(dev, AlertKind.BACKLOG_NEAR_EVICTION, "")] = (
                f"{h.segments_unsent} unsent segments, oldest evicted in {h.eviction_eta_s:.0f} s"
            )
    if abs(r.clock_skew_s) > rules.clock_skew_s:
        out[(dev, AlertKind.CLOCK_SKEW, "")] = f"device clock off by {r.clock_skew_s:+.1f} s"
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
