"""The fleet as the control centre sees it: registered devices (catalog) merged with their live
state, health and alerts (the MQTT fleet view, when the controller runs one).

Without a fleet view, devices are still listed from the catalog with `online: null`, so the
console works on a controller with no broker. GB/T 28181 devices (no agent, no MQTT) get their
state from their registration rows (`deps.gb`): online or why not, last keepalive, channels.
A county sees its own devices; the city and the city-wide departments see all.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from google.protobuf.json_format import MessageToDict

from controller.api.common import sees_county
from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.errors import ApiError
from controller.api.schemas import AlertOut, CameraStateOut, DeviceDetail, DeviceOut
from controller.catalog import DeviceRow
from controller.fleet.alerts import Alert
from controller.fleet.monitor import DeviceRecord
from controller.grants.policy import User
from protos.vigil.v1.fleet_pb2 import CameraHealth

router = APIRouter(prefix="/api/v1", tags=["fleet"])


def _alert(a: Alert) -> AlertOut:
    return AlertOut(
        device_id=a.device_id,
        kind=str(a.kind),
        camera_id=a.camera_id,
        detail=a.detail,
        raised_us=a.raised_us,
        level=a.level,
    )


def _camera_state(c: CameraHealth) -> CameraStateOut:
    return CameraStateOut(
        camera_id=c.camera_id,
        state=c.state or ("streaming" if c.connected else "disconnected"),
        reason=c.reason,
        connected=c.connected,
        frame_age_s=c.frame_age_s,
        gop_s=c.gop_s,
    )


def _device(
    registered: DeviceRow | None, live: DeviceRecord | None, alerts: int, device_id: str
) -> DeviceOut:
    county = registered.county if registered else (live.county if live else "")
    site = registered.site if registered else (live.site if live else "")
    health = live.health if live else None
    return DeviceOut(
        device_id=device_id,
        county=county,
        site=site,
        kind=registered.kind if registered else "",
        registered=registered is not None,
        online=live.online if live else None,
        offline_reason=live.reason if live else "",
        last_seen_us=live.last_seen_us if live else 0,
        cameras_connected=sum(1 for c in health.cameras if c.connected) if health else None,
        alerts=alerts,
    )


def _visible(deps: ApiDeps, user: User) -> dict[str, DeviceOut]:
    registered = {d.device_id: d for d in deps.catalog.devices()}
    live = {r.device_id: r for r in deps.fleet.devices()} if deps.fleet else {}
    gb = deps.gb.states() if deps.gb else {}
    counts: dict[str, int] = {}
    if deps.fleet:
        for a in deps.fleet.alerts():
            counts[a.device_id] = counts.get(a.device_id, 0) + 1
    out: dict[str, DeviceOut] = {}
    for device_id in sorted(set(registered) | set(live)):
        dev = _device(
            registered.get(device_id), live.get(device_id), counts.get(device_id, 0), device_id
        )
        if device_id in gb and device_id not in live:
            state, facts = gb[device_id]
            dev.online, dev.offline_reason, dev.gb = state.online, state.reason, facts
            dev.last_seen_us = facts.last_keepalive_us
        if sees_county(deps, user, dev.county):
            out[device_id] = dev
    return out


@router.get("/devices", response_model=list[DeviceOut])
def devices(user: UserDep, deps: DepsDep) -> list[DeviceOut]:
    return list(_visible(deps, user).values())


@router.get("/devices/{device_id}", response_model=DeviceDetail)
def device(device_id: str, user: UserDep, deps: DepsDep) -> DeviceDetail:
    dev = _visible(deps, user).get(device_id)
    if dev is None:
        raise ApiError("unknown_device", f"no device {device_id[:64]!r} visible to {user.org_id!r}")
    detail = DeviceDetail(**dev.model_dump())
    detail.cameras = [c.camera_id for c in deps.catalog.cameras() if c.device_id == device_id]
    if deps.fleet is not None:
        record = deps.fleet.device(device_id)
        if record is not None and record.health is not None:
            h = record.health
            detail.health = MessageToDict(h, preserving_proto_field_name=True)
            detail.camera_states = [_camera_state(c) for c in h.cameras]
            if h.clock_offset_known:
                detail.clock_offset_s = h.clock_offset_ms / 1000
                detail.clock_offset_error_s = h.clock_offset_error_ms / 1000
        detail.history = [asdict(p) for p in deps.fleet.history(device_id)]
        detail.active_alerts = [_alert(a) for a in deps.fleet.alerts(device_id)]
    return detail


@router.get("/camera-states", response_model=list[CameraStateOut])
def camera_states(user: UserDep, deps: DepsDep) -> list[CameraStateOut]:
    """Every visible camera's state and reason as its agent last reported them, in one request:
    the console shows them for the whole fleet without one request per device."""
    if deps.fleet is None:
        return []  # nothing reported: the console shows "unknown"
    visible = _visible(deps, user)
    return [
        _camera_state(c)
        for record in deps.fleet.devices()
        if record.device_id in visible and record.health is not None
        for c in record.health.cameras
    ]


@router.get("/alerts", response_model=list[AlertOut])
def alerts(user: UserDep, deps: DepsDep) -> list[AlertOut]:
    if deps.fleet is None:
        raise ApiError("fleet_unavailable", "this controller runs no fleet (MQTT) view")
    visible = _visible(deps, user)
    return [_alert(a) for a in deps.fleet.alerts() if a.device_id in visible]
