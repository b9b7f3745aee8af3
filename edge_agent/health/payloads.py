"""Pure builders of the agent's MQTT payloads (state, birth, health, event) from plain data.

Everything the reporter publishes is computed here from values (config, buffer stats, camera
statuses, system figures, time), so what the controller receives is unit-tested without a
broker, a disk or a camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.clock import SkewEstimate
from edge_agent.config import AgentConfig
from edge_agent.health.evictions import fact_id
from edge_agent.model import AgentEvent, BufferStats, CameraStatus, EvictionRecord
from edge_agent.redact import redact_text, redact_url
from edge_agent.uplink.failover import RouteStatus
from protos.vigil.v1 import common_pb2, fleet_pb2

US = 1_000_000
HOUR_US = 3600 * US
MAX_REASON = 500

EVENT_KINDS: dict[str, int] = {
    "camera_lost": fleet_pb2.Event.KIND_CAMERA_LOST,
    "camera_back": fleet_pb2.Event.KIND_CAMERA_BACK,
    "disk_low": fleet_pb2.Event.KIND_DISK_LOW,
    "unsent_evicted": fleet_pb2.Event.KIND_UNSENT_EVICTED,
    "chain_break": fleet_pb2.Event.KIND_CHAIN_BREAK,
    "clock_skew": fleet_pb2.Event.KIND_CLOCK_SKEW,
    "cert_near_expiry": fleet_pb2.Event.KIND_CERT_NEAR_EXPIRY,
    "events_dropped": fleet_pb2.Event.KIND_EVENTS_DROPPED,
    "long_gop": fleet_pb2.Event.KIND_LONG_GOP,
    "codec_changed": fleet_pb2.Event.KIND_CODEC_CHANGED,
    "audio_changed": fleet_pb2.Event.KIND_AUDIO_CHANGED,
    "audio_lost": fleet_pb2.Event.KIND_AUDIO_LOST,
    "file_rejected": fleet_pb2.Event.KIND_FILE_REJECTED,
    "image_fault": fleet_pb2.Event.KIND_IMAGE_FAULT,
    "image_ok": fleet_pb2.Event.KIND_IMAGE_OK,
}

CAPABILITIES = ("hold", "release", "rebirth", "reconfigure")


@dataclass(frozen=True, slots=True)
class SystemFigures:
    """Host load as read by psutil (see reporter.psutil_probe)."""

    cpu_pct: float
    mem_pct: float
    disk_free_bytes: int
    disk_total_bytes: int


def state(device_id: str, online: bool, session: int, at_us: int, reason: str = "") -> bytes:
    return fleet_pb2.DeviceState(
        device_id=device_id, online=online, session=session, at_unix_us=at_us, reason=reason
    ).SerializeToString()


def birth(
    config: AgentConfig,
    session: int,
    at_us: int,
    agent_version: str,
    disk_total_bytes: int,
    capabilities: Sequence[str],
) -> fleet_pb2.Birth:
    """Who this device is and what it runs; camera URLs lose their credentials."""
    kind = common_pb2.DEVICE_KIND_NVR if config.kind == "nvr" else common_pb2.DEVICE_KIND_HANDHELD
    return fleet_pb2.Birth(
        device_id=config.device_id,
        session=session,
        agent_version=agent_version,
        kind=kind,
        cameras=[
            fleet_pb2.CameraDescription(
                camera_id=c.id,
                kind=c.kind,
                url_redacted=redact_url(c.url) if c.url else c.path,
                segment_seconds=round(c.segment_seconds),
            )
            for c in config.cameras
        ],
        disk_total_bytes=disk_total_bytes,
        capabilities=list(capabilities),
        at_unix_us=at_us,
        health_interval_s=config.mqtt.health_interval_s,
        county=config.county,
        site=config.site,
    )


def eviction_eta_s(stats: BufferStats, cameras: Sequence[CameraStatus]) -> float:
    """Seconds until recording would have to evict the oldest unsent segment; -1: never.

    Uploaded segments go first, so the room left for new video before an unsent one must go
    is the quota minus what is unsent; it fills at the cameras' combined bitrate.
    """
    if stats.unsent_segments == 0:
        return -1.0
    fill_bytes_s = sum(c.bitrate_bps for c in cameras if c.connected) / 8.0
    if fill_bytes_s <= 0:
        return -1.0
    room = max(0, stats.quota_bytes - stats.unsent_bytes)
    return room / fill_bytes_s


def camera_state(status: CameraStatus) -> str:
    """The state to report; a status without one (built by hand) is derived from `connected`."""
    return status.state or ("streaming" if status.connected else "starting")


def camera_health(status: CameraStatus, now_us: int) -> fleet_pb2.CameraHealth:
    age = (now_us - status.last_frame_us) / US if status.last_frame_us else -1.0
    recent = sum(1 for g in status.gaps if g.end_us > now_us - HOUR_US)
    return fleet_pb2.CameraHealth(
        camera_id=status.camera_id,
        connected=status.connected,
        frame_age_s=max(age, 0.0) if status.last_frame_us else -1.0,
        fps=status.fps,
        bitrate_bps=status.bitrate_bps,
        last_keyframe_unix_us=status.last_keyframe_us,
        gaps_last_hour=recent,
        state=camera_state(status),
        reason=redact_text(status.reason)[:MAX_REASON],
        gop_s=status.gop_s,
    )


def add_clock(msg: fleet_pb2.Health, skew: SkewEstimate | None, uptime_s: float) -> None:
    """The agent's uptime and measured clock offset (when known) into a health message."""
    msg.uptime_s = max(0.0, uptime_s)
    if skew is not None:
        msg.clock_offset_known = True
        msg.clock_offset_ms = skew.skew_us / 1000.0
        msg.clock_offset_error_ms = skew.error_us / 1000.0


def add_routes(msg: fleet_pb2.Health, routes: RouteStatus | None) -> None:
    """Which controller replicas the uplink uses (control, upload) and its failover count."""
    if routes is None:
        return
    msg.control_address = routes.control_address
    msg.upload_address = routes.upload_address
    msg.controller_failovers = routes.failovers


def health(
    device_id: str,
    session: int,
    seq: int,
    now_us: int,
    system: SystemFigures,
    stats: BufferStats | None,
    cameras: Sequence[CameraStatus],
    upload_rate_bps: int,
) -> fleet_pb2.Health:
    msg = fleet_pb2.Health(
        device_id=device_id,
        session=session,
        seq=seq,
        at_unix_us=now_us,
        cpu_pct=system.cpu_pct,
        mem_pct=system.mem_pct,
        disk_free_bytes=system.disk_free_bytes,
        disk_total_bytes=system.disk_total_bytes,
        cameras=[camera_health(c, now_us) for c in cameras],
        upload_rate_bps=upload_rate_bps,
        eviction_eta_s=-1.0,
    )
    if stats is not None:
        msg.buffer_bytes = stats.total_bytes
        msg.segments_unsent = stats.unsent_segments
        msg.segments_uploaded = stats.uploaded_segments
        msg.segments_held = stats.held_segments
        if stats.oldest_unsent_start_us is not None:
            msg.oldest_unsent_age_s = max(0.0, (now_us - stats.oldest_unsent_start_us) / US)
        msg.eviction_eta_s = eviction_eta_s(stats, cameras)
    return msg


def event(ev: AgentEvent, device_id: str, session: int, seq: int) -> fleet_pb2.Event:
    """An AgentEvent on the wire; an unknown kind travels as UNSPECIFIED with its name."""
    kind = EVENT_KINDS.get(ev.kind, fleet_pb2.Event.KIND_UNSPECIFIED)
    detail = ev.detail if kind else f"{ev.kind}: {ev.detail}"
    msg = fleet_pb2.Event(
        device_id=device_id,
        session=session,
        seq=seq,
        at_unix_us=ev.at_us,
        kind=kind,  # type: ignore[arg-type]
        camera_id=ev.camera_id,
        bytes=ev.size_bytes,
        detail=detail[:1000],
    )
    if ev.start_us or ev.end_us:
        msg.range.start_unix_us = ev.start_us
        msg.range.end_unix_us = ev.end_us
    return msg


def eviction_event(rec: EvictionRecord) -> AgentEvent:
    """An unsent segment left the buffer before upload: a loss the controller must record."""
    return AgentEvent(
        kind="unsent_evicted",
        at_us=rec.at_us,
        camera_id=rec.camera_id,
        start_us=rec.start_us,
        end_us=rec.end_us,
        size_bytes=rec.size_bytes,
        detail=f"segment {rec.segment_id} evicted before upload",
    )


def eviction_batch(
    recs: Sequence[EvictionRecord], device_id: str, session: int, seq: int, now_us: int
) -> fleet_pb2.Event:
    """Several unsent evictions as one event (`Event.losses`, each fact named by its
    segment's id): a long outage's backlog within the controller's per-device rate limit."""
    msg = fleet_pb2.Event(
        device_id=device_id,
        session=session,
        seq=seq,
        at_unix_us=now_us,
        kind=fleet_pb2.Event.KIND_UNSENT_EVICTED,
        detail=f"{len(recs)} segments evicted before upload",
    )
    for rec in recs:
        fact = msg.losses.add(
            fact_id=fact_id(rec),
            camera_id=rec.camera_id,
            bytes=rec.size_bytes,
            at_unix_us=rec.at_us,
        )
        fact.range.start_unix_us = rec.start_us
        fact.range.end_unix_us = rec.end_us
    return msg


def disk_low_change(
    was_low: bool, free_bytes: int, threshold: int, now_us: int
) -> tuple[bool, AgentEvent | None]:
    """Edge-triggered disk-low event, with 10% hysteresis so it does not flap at the line."""
    if not was_low and free_bytes < threshold:
        detail = f"{free_bytes} bytes free < {threshold}"
        return True, AgentEvent(kind="disk_low", at_us=now_us, size_bytes=free_bytes, detail=detail)
    if was_low and free_bytes > threshold * 1.1:
        return False, None
    return was_low, None


def significant_change(prev: fleet_pb2.Health | None, cur: fleet_pb2.Health) -> bool:
    """Whether `cur` must go out now rather than at the next interval.

    Cameras connecting, dropping or changing state, the set of cameras changing, or the
    eviction ETA of the backlog falling under an hour: the control centre should not wait
    30 s to see those.
    """
    if prev is None:
        return True
    before = {c.camera_id: (c.connected, c.state) for c in prev.cameras}
    after = {c.camera_id: (c.connected, c.state) for c in cur.cameras}
    if before != after:
        return True
    soon = 3600.0
    was_soon = 0 <= prev.eviction_eta_s < soon
    is_soon = 0 <= cur.eviction_eta_s < soon
    return is_soon and not was_soon
