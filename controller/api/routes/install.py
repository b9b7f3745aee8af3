"""The installer API (`vigil-provision` talks to it): devices, tokens, retire, replace.

    POST /api/v1/install/devices                  register (or update) a device + cameras, token
    POST /api/v1/install/devices/{id}/token       a new single-use token (cancels older ones)
    POST /api/v1/install/devices/{id}/retire      revoke its certificates now
    POST /api/v1/install/devices/{id}/replace     {"new_device_id"}: NEW takes the cameras
    GET  /api/v1/install/devices/{id}             registered, enrolled, retired, cameras
    POST /api/v1/install/sites, GET .../sites     the county's sites (install_sites.py)

A device is added only to a registered site of its county (404 `unknown_site`), with an
optional GB/T 28181 code of that county (400 `invalid_gb_code`, 409 `gb_code_taken`).

Installers and admins only. A county's users act only on devices of their county (a device
registered elsewhere, or a body naming another county, is refused 403 and audited); the
city's act anywhere. Every change is audited. The token is in the answer once; the audit log
and the controller's log get only its fingerprint.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.errors import ApiError
from controller.api.routes import install_sites
from controller.api.routes.install_scope import may_act
from controller.enrollment.operations import OperationError, Operations
from controller.enrollment.rules import token_fingerprint
from controller.enrollment.siterules import SiteError, check_device_code
from controller.enrollment.store import IssuedToken
from controller.grants.policy import User
from controller.ingest.rules import CAMERA_ID_RE

router = APIRouter(prefix="/api/v1/install", tags=["install"])
ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
router.include_router(install_sites.router)


class DeviceIn(BaseModel):
    device_id: str = Field(pattern=ID)
    county: str = Field(pattern=ID)
    site: str = Field(pattern=ID)
    kind: str = Field(default="nvr", pattern="^(nvr|handheld)$")
    cameras: list[str] = Field(default_factory=list, max_length=256)
    ttl_s: float | None = Field(default=None, ge=60, le=90 * 86400)
    gb_code: str = Field(default="", max_length=20)


class TokenIn(BaseModel):
    ttl_s: float | None = Field(default=None, ge=60, le=90 * 86400)


class ReplaceIn(BaseModel):
    new_device_id: str = Field(pattern=ID)
    ttl_s: float | None = Field(default=None, ge=60, le=90 * 86400)


class TokenOut(BaseModel):
    device_id: str
    token: str
    token_fingerprint: str
    expires_us: int


class InstallStatus(BaseModel):
    device_id: str
    county: str
    site: str
    kind: str
    cameras: list[str]
    enrolled: bool  # holds a live (unrevoked, unexpired) certificate
    certificates: int
    retired: bool
    site_name: str = ""
    gb_code: str = ""


def _ops(deps: ApiDeps) -> Operations:
    if deps.enrollment is None:
        raise ApiError("enrollment_unavailable", "this controller runs no enrollment", status=503)
    return deps.enrollment


def _existing_county(deps: ApiDeps, device_id: str) -> str:
    row = deps.catalog.device(device_id)
    if row is None:
        raise ApiError("unknown_device", f"device {device_id[:64]!r} is not registered")
    return row.county


def _token_out(deps: ApiDeps, who: User, action: str, issued: IssuedToken) -> TokenOut:
    fp = token_fingerprint(issued.token)
    deps.grants.record(action, who, detail={"device_id": issued.device_id, "token_fp": fp})
    return TokenOut(
        device_id=issued.device_id,
        token=issued.token,
        token_fingerprint=fp,
        expires_us=issued.expires_us,
    )


def _ttl(deps: ApiDeps, ttl_s: float | None) -> float:
    return ttl_s or _ops(deps).default_ttl_s


@router.post("/devices", response_model=TokenOut)
def add_device(body: DeviceIn, user: UserDep, deps: DepsDep) -> TokenOut:
    action = "install.device_add"
    may_act(deps, user, body.county, action, body.device_id)
    existing = deps.catalog.device(body.device_id)
    if existing is not None:
        may_act(deps, user, existing.county, action, body.device_id)
    bad = [c for c in body.cameras if not CAMERA_ID_RE.fullmatch(c)]
    if bad:
        raise ApiError("invalid_camera", f"invalid camera id {bad[0][:64]!r}")
    for camera in body.cameras:
        row = deps.catalog.camera(camera)
        if row is not None and row.device_id != body.device_id:
            raise ApiError(
                "camera_taken",
                f"camera {camera!r} belongs to device {row.device_id!r}: replace that device",
                status=409,
            )
    ops = _ops(deps)
    if ops.store.retired(body.device_id):
        raise ApiError("retired", f"device {body.device_id!r} is retired: use a new id", status=409)
    _check_site_and_code(ops, body)
    deps.catalog.upsert_device(body.device_id, body.county, body.site, body.kind)
    if body.gb_code:
        ops.store.set_device_code(body.device_id, body.gb_code)
    for camera in body.cameras:
        deps.catalog.upsert_camera(camera, body.device_id)
    try:
        issued = ops.token(body.device_id, user.user_id, _ttl(deps, body.ttl_s))
    except OperationError as exc:
        raise ApiError("refused", str(exc), status=409) from None
    return _token_out(deps, user, action, issued)


def _check_site_and_code(ops: Operations, body: DeviceIn) -> None:
    """Before anything is written: the site is registered in the device's county and the
    code, if any, is a device code of that county that no other device holds."""
    if ops.store.site(body.county, body.site) is None:
        raise ApiError(
            "unknown_site",
            f"site {body.county}/{body.site} is not registered: `vigil-provision site add` first",
            status=404,
        )
    if not body.gb_code:
        return
    try:
        check_device_code(body.gb_code, body.county)
    except SiteError as exc:
        raise ApiError("invalid_gb_code", str(exc)) from None
    holder = ops.store.code_holder(body.gb_code)
    if holder not in (None, body.device_id):
        raise ApiError(
            "gb_code_taken", f"GB/T 28181 code {body.gb_code} is device {holder!r}'s", status=409
        )


@router.post("/devices/{device_id}/token", response_model=TokenOut)
def new_token(device_id: str, body: TokenIn, user: UserDep, deps: DepsDep) -> TokenOut:
    action = "install.token"
    may_act(deps, user, _existing_county(deps, device_id), action, device_id)
    try:
        issued = _ops(deps).token(device_id, user.user_id, _ttl(deps, body.ttl_s))
    except OperationError as exc:
        raise ApiError("refused", str(exc), status=409) from None
    return _token_out(deps, user, action, issued)


@router.post("/devices/{device_id}/retire")
def retire(device_id: str, user: UserDep, deps: DepsDep) -> dict[str, int]:
    action = "install.retire"
    may_act(deps, user, _existing_county(deps, device_id), action, device_id)
    try:
        count = _ops(deps).retire(device_id, f"retired by {user.user_id}")
    except OperationError as exc:
        deps.grants.record(action, user, detail={"device_id": device_id, "incomplete": True})
        raise ApiError("broker_account_left", str(exc), status=502) from None
    deps.grants.record(action, user, detail={"device_id": device_id, "revoked": count})
    return {"revoked": count}


@router.post("/devices/{device_id}/replace", response_model=TokenOut)
def replace(device_id: str, body: ReplaceIn, user: UserDep, deps: DepsDep) -> TokenOut:
    action = "install.replace"
    may_act(deps, user, _existing_county(deps, device_id), action, device_id)
    if deps.catalog.device(body.new_device_id) is not None:
        may_act(deps, user, _existing_county(deps, body.new_device_id), action, device_id)
    try:
        issued = _ops(deps).replace(
            device_id, body.new_device_id, user.user_id, _ttl(deps, body.ttl_s)
        )
    except OperationError as exc:
        raise ApiError("refused", str(exc), status=409) from None
    return _token_out(deps, user, action, issued)


@router.get("/devices/{device_id}", response_model=InstallStatus)
def status(device_id: str, user: UserDep, deps: DepsDep) -> InstallStatus:
    row = deps.catalog.device(device_id)
    if row is None:
        raise ApiError("unknown_device", f"device {device_id[:64]!r} is not registered")
    may_act(deps, user, row.county, "install.status", device_id)
    ops = _ops(deps)
    now = deps.clock.now_us()
    certs = ops.store.certs_of(device_id)
    return InstallStatus(
        device_id=device_id,
        county=row.county,
        site=row.site,
        kind=row.kind,
        cameras=[c.camera_id for c in deps.catalog.cameras() if c.device_id == device_id],
        enrolled=any(not c.revoked_us and c.not_after_us > now for c in certs),
        certificates=len(certs),
        retired=ops.store.retired(device_id),
        site_name=site.name if (site := ops.store.site(row.county, row.site)) else "",
        gb_code=ops.store.device_code(device_id),
    )


class CameraCheck(BaseModel):
    camera_id: str
    state: str  # as the agent last reported it ("" when never)
    frame_age_s: float | None
    fps: float | None  # frames per second as the agent measures them (None: never reported)
    segments: int
    newest_start_us: int
    hash_ok: bool | None  # the newest stored segment re-hashed at the city (None: none yet)


class Acceptance(BaseModel):
    """What `vigil-provision verify` judges on site (the verdicts are the tool's)."""

    device_id: str
    enrolled: bool
    retired: bool
    online: bool | None  # birth seen and not gone (None: no MQTT fleet view here)
    last_seen_us: int
    clock_offset_s: float | None
    cameras: list[CameraCheck]


def _hash_ok(deps: ApiDeps, object_key: str, sha256: str) -> bool:
    import hashlib

    digest = hashlib.sha256()
    with deps.store.open_read(object_key) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256


@router.get("/devices/{device_id}/acceptance", response_model=Acceptance)
def acceptance(device_id: str, user: UserDep, deps: DepsDep) -> Acceptance:
    info = status(device_id, user, deps)
    record = deps.fleet.device(device_id) if deps.fleet is not None else None
    health = record.health if record is not None else None
    states = {c.camera_id: c for c in health.cameras} if health is not None else {}
    cameras = []
    for camera in info.cameras:
        newest = deps.catalog.newest_segment(camera)
        reported = states.get(camera)
        cameras.append(
            CameraCheck(
                camera_id=camera,
                state=(reported.state or ("streaming" if reported.connected else "disconnected"))
                if reported is not None
                else "",
                frame_age_s=reported.frame_age_s if reported is not None else None,
                fps=reported.fps if reported is not None else None,
                segments=deps.catalog.count_segments(camera),
                newest_start_us=newest.start_us if newest else 0,
                hash_ok=_hash_ok(deps, newest.object_key, newest.sha256) if newest else None,
            )
        )
    offset = None
    if health is not None and health.clock_offset_known:
        offset = health.clock_offset_ms / 1000
    return Acceptance(
        device_id=device_id,
        enrolled=info.enrolled,
        retired=info.retired,
        online=record.online if record is not None else (None if deps.fleet is None else False),
        last_seen_us=record.last_seen_us if record is not None else 0,
        clock_offset_s=offset,
        cameras=cameras,
    )
