"""Request and response bodies of `/api/v1` (pydantic; they make the OpenAPI document).

Requests forbid unknown fields (a misspelt restriction must not be silently dropped). Grant
tokens are *not* length-limited here: an oversize token must reach the grant decoder, which
refuses it with reason `oversize` and audits it; the request body limit bounds memory.
Times are Unix microseconds (UTC), like everywhere else in Vigil.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.grants.model import MAX_SCOPE_ITEMS, Operation


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    reason: str
    message: str


class LoginRequest(_Request):
    user_id: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    user_id: str
    org_id: str
    role: str
    display_name: str = ""


class AccountOut(UserOut):
    """A user as the user-admin view lists it."""

    disabled: bool = False
    last_login_us: int = 0


class OrganisationOut(BaseModel):
    org_id: str
    name: str
    kind: str


class SessionOut(BaseModel):
    token: str
    expires_us: int
    user: UserOut


class UserCreate(_Request):
    user_id: str = Field(max_length=64)
    org_id: str | None = Field(default=None, max_length=128)
    role: str = Field(max_length=16)
    password: str = Field(max_length=1024)
    display_name: str = Field(default="", max_length=128)


class MediaOut(BaseModel):
    """What a segment carries, probed from its container at ingest ("" / 0: absent or not
    known). `audio_codec` "" means the segment has no audio."""

    video_codec: str
    video_profile: str
    width: int
    height: int
    frame_rate: float
    audio_codec: str
    audio_sample_rate: int
    audio_channels: int


class CameraOut(BaseModel):
    camera_id: str
    device_id: str
    county: str
    site: str
    area: str
    resource_class: str
    owner_org: str
    retention_days: int
    # The camera's current media: its latest successfully probed segment's (None: unknown).
    media: MediaOut | None = None
    # The resource directory (controller/directory): empty until described.
    name: str = ""
    county_name: str = ""  # the county as shown (武都区), whatever the registry calls it
    township: str = ""
    village: str = ""
    lat: float | None = None
    lon: float | None = None
    gb_code: str | None = None


class SegmentOut(BaseModel):
    segment_id: str
    start_us: int
    end_us: int
    duration_us: int
    size_bytes: int
    flag: str
    chain_ok: bool
    media: MediaOut | None = None  # None: the segment could not be probed (or predates it)
    # The agent's flags, by name: discontinuity, truncated, clock_skew.
    agent_flags: list[str] = Field(default_factory=list)


class SegmentList(BaseModel):
    camera_id: str
    from_us: int
    to_us: int
    segments: list[SegmentOut]
    truncated: bool


class GrantCreate(_Request):
    operations: list[Operation] = Field(min_length=1, max_length=3)
    from_us: int
    to_us: int
    purpose: str = Field(max_length=512)
    cameras: list[str] = Field(default_factory=list, max_length=MAX_SCOPE_ITEMS)
    areas: list[str] = Field(default_factory=list, max_length=MAX_SCOPE_ITEMS)
    classes: list[str] = Field(default_factory=list, max_length=3)
    holder_org: str | None = Field(default=None, max_length=128)
    holder_user: str | None = Field(default=None, max_length=128)
    holder_public_key: str = Field(default="", max_length=64, description="hex Ed25519 key")
    case_id: str = Field(default="", max_length=128)
    watermark_id: str = Field(default="", max_length=128)
    lifetime_s: int | None = Field(default=None, ge=1, le=366 * 86400)
    not_before_us: int | None = None
    downloads: int | None = Field(default=None, ge=0, le=100)


class GrantOut(BaseModel):
    token: str
    grant_id: str
    chain: list[str]
    issuer_org: str
    holder_org: str
    holder_user: str
    operations: list[str]
    cameras: list[str]
    areas: list[str]
    from_us: int
    to_us: int
    not_before_us: int
    expires_us: int
    delegable: bool
    download_limit: int
    case_id: str
    watermark_id: str


class TokenRequest(_Request):
    token: str


class RevokeRequest(_Request):
    reason: str = Field(min_length=1, max_length=256)


class RevokeOut(BaseModel):
    grant_id: str
    sequence: int


class AlertOut(BaseModel):
    device_id: str
    kind: str
    camera_id: str
    detail: str
    raised_us: int
    level: str = "warning"  # "info": needs no action (long_gop)


class CameraStateOut(BaseModel):
    """One camera as its agent last reported it (fleet view)."""

    camera_id: str
    state: str  # starting, streaming, unsupported_codec, auth_failed, unreachable, ...
    reason: str
    connected: bool
    frame_age_s: float
    gop_s: float


class GbChannelOut(BaseModel):
    """One channel of a GB/T 28181 device: its own Catalog `Status` and the state judged from
    it and the device's (`gb28181.devstate.judge_channel`)."""

    camera_id: str
    status: str  # on, off, unknown: what the device's last Catalog answer said of it
    reported_us: int  # when that answer arrived (0: none stored)
    online: bool | None  # None: the device never registered
    reason: str = ""  # catalog_off, device_offline ("" when online)


class GbDeviceOut(BaseModel):
    """A GB/T 28181 device's registration (controller/gb28181: it has no agent)."""

    registered_us: int  # 0: never registered
    expires_us: int  # 0: unregistered
    last_keepalive_us: int  # its last keepalive or REGISTER (written at most every 30 s)
    contact: str  # host:port it registered from
    replica: str  # the controller replica it registered to (holds its sessions)
    channels: int  # video channels its last Catalog answer listed
    not_answering_since_us: int = 0  # > 0: an INVITE went unanswered
    channel_states: list[GbChannelOut] = []  # each channel's own state, by code


class DeviceOut(BaseModel):
    device_id: str
    county: str
    site: str
    kind: str
    registered: bool
    online: bool | None  # None: no fleet view running, or nothing heard yet
    offline_reason: str = ""
    last_seen_us: int = 0
    cameras_connected: int | None = None
    alerts: int = 0
    gb: GbDeviceOut | None = None  # kind "gb28181": its registration


class DeviceDetail(DeviceOut):
    health: dict[str, Any] | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    active_alerts: list[AlertOut] = Field(default_factory=list)
    cameras: list[str] = Field(default_factory=list)
    camera_states: list[CameraStateOut] = Field(default_factory=list)
    # The device clock minus the controller's (s) and its error bound, when measured over RPC.
    clock_offset_s: float | None = None
    clock_offset_error_s: float | None = None


class AuditOut(BaseModel):
    seq: int
    at_us: int
    action: str
    actor_user: str
    actor_org: str
    camera_id: str
    case_id: str
    grant_id: str
    outcome: str
    reason: str
    detail: dict[str, Any]


class ExportRequest(_Request):
    token: str
    camera_id: str = Field(max_length=128)
    from_us: int
    to_us: int


# --- footage requests (jobs) and the scheduler ----------------------------------------------


class FootageCreate(_Request):
    """A footage request. Camera count and case id are checked by the route (audited), so
    they are deliberately loose here; the body size limit bounds the list."""

    cameras: list[str] = Field(min_length=1, max_length=1000)
    from_us: int
    to_us: int
    deadline_us: int
    case_id: str = Field(default="", max_length=256)
    traffic_class: str = Field(default="evidence", max_length=16)


class GoneOut(BaseModel):
    camera_id: str
    start_us: int
    end_us: int
    reason: str


class CameraStatusOut(BaseModel):
    camera_id: str
    device_id: str
    complete: bool
    waiting: str


class JobOut(BaseModel):
    job_id: str
    case_id: str
    cameras: list[str]
    from_us: int
    to_us: int
    traffic_class: str
    deadline_us: int
    state: str
    created_at_us: int
    updated_at_us: int
    finished_at_us: int
    requested_by: str
    bytes_done: int
    bytes_total: int
    segments_done: int
    segments_total: int
    percent: float
    eta_us: int  # 0: unknown yet
    detail: str
    gone: list[GoneOut]
    cameras_status: list[CameraStatusOut]


class JobSegmentOut(BaseModel):
    segment_id: str
    camera_id: str
    start_us: int
    duration_us: int
    size_bytes: int
    state: str


class DevicePlanOut(BaseModel):
    device_id: str
    connected: bool
    link_id: str
    rates_bps: dict[str, int]
    planned_bps: int
    delivered_bps: int
    lease_id: str
    lease_segments: int
    lease_expires_us: int


class LinkOut(BaseModel):
    link_id: str
    capacity_bps: int
    planned_bps: int
    delivered_bps: int
    ratio: float | None  # delivered / planned; None when nothing is planned
    saturated: bool


class PlanOut(BaseModel):
    at_us: int
    plan_version: int
    devices: list[DevicePlanOut]
    links: list[LinkOut]
    saturated_links: list[str]
    counters: dict[str, int]
