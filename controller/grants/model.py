"""Plain data of the sharing core: operations, grants, cameras and area paths.

A grant travels as protobuf (`protos/vigil/v1/grants.proto`) but every decision works on the
frozen `GrantBody` below, validated once when decoded, so checks never meet a half-formed
message. Area paths are '/'-joined components from the city down to the camera
(`陇南市/成县/城关镇/东关村/site-01/cam-01`); a prefix covers a path only at a component
boundary, so `陇南市/成县` never covers `陇南市/成县区`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from controller.grants.errors import GrantRefused, Reason

US_PER_S = 1_000_000
MINUTE_US = 60 * US_PER_S
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

GRANT_ID = re.compile(r"[0-9a-f]{32}")
MAX_ID_CHARS = 128  # camera, user, org, case and watermark ids
MAX_TEXT_CHARS = 512  # purpose
MAX_AREA_CHARS = 512
MAX_SCOPE_ITEMS = 1000  # cameras + area prefixes of one grant
RESOURCE_CLASSES = frozenset({"I", "II", "III"})


class Operation(StrEnum):
    LIVE = "live"
    PLAYBACK = "playback"
    DOWNLOAD = "download"


@dataclass(frozen=True, slots=True)
class GrantBody:
    """One grant, as signed. Scope is cameras ∪ areas, filtered by resource class."""

    grant_id: str
    parent_id: str
    issuer_org: str
    holder_org: str
    holder_user: str
    holder_public_key: bytes  # raw Ed25519; empty: the holder cannot delegate
    camera_ids: frozenset[str]
    area_prefixes: tuple[str, ...]
    resource_classes: frozenset[str]  # empty: any class
    footage_from_us: int
    footage_to_us: int
    operations: frozenset[Operation]
    not_before_us: int
    expires_us: int
    purpose: str
    case_id: str
    watermark_id: str
    download_limit: int  # 0: no limit
    issued_at_us: int
    renewal: int = 0

    @property
    def delegable(self) -> bool:
        return bool(self.holder_public_key)

    @property
    def lifetime_us(self) -> int:
        return self.expires_us - self.not_before_us

    @property
    def window_us(self) -> int:
        return self.footage_to_us - self.footage_from_us


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """What policy and scope checks need to know about a camera."""

    camera_id: str
    area: str  # full area path, ending with the camera itself
    resource_class: str
    owner_org: str


def area_path(*components: str) -> str:
    """Join area components into a path; ValueError for an empty or '/'-bearing component."""
    for c in components:
        if not c or "/" in c or c != c.strip():
            raise ValueError(f"area component {c!r} is empty, padded or contains '/'")
    path = "/".join(components)
    if len(path) > MAX_AREA_CHARS:
        raise ValueError(f"area path longer than {MAX_AREA_CHARS} characters")
    return path


def check_area(path: str) -> str:
    """The path itself if it is a well-formed area path, else ValueError."""
    if not isinstance(path, str) or not path:
        raise ValueError("area path is empty")
    area_path(*path.split("/"))
    return path


def area_within(path: str, prefix: str) -> bool:
    """True when `path` is `prefix` or below it (component-wise)."""
    return path == prefix or path.startswith(prefix + "/")


def in_scope(body: GrantBody, camera: CameraInfo) -> bool:
    """Does this one grant (ignoring its ancestors) cover the camera?"""
    if body.resource_classes and camera.resource_class not in body.resource_classes:
        return False
    if camera.camera_id in body.camera_ids:
        return True
    return any(area_within(camera.area, p) for p in body.area_prefixes)


def check_body(body: GrantBody) -> GrantBody:
    """Structural validity of one grant, independent of any other; GrantRefused(MALFORMED)."""

    def bad(msg: str) -> GrantRefused:
        return GrantRefused(Reason.MALFORMED, f"grant {body.grant_id[:32]!r}: {msg}")

    if not GRANT_ID.fullmatch(body.grant_id):
        raise bad("grant id is not 32 lowercase hex digits")
    if body.parent_id and not GRANT_ID.fullmatch(body.parent_id):
        raise bad("parent id is not 32 lowercase hex digits")
    for name, value in (
        ("issuer_org", body.issuer_org),
        ("holder_org", body.holder_org),
        ("holder_user", body.holder_user),
        ("case_id", body.case_id),
        ("watermark_id", body.watermark_id),
    ):
        if len(value) > MAX_ID_CHARS or not value.isprintable():
            raise bad(f"{name} is longer than {MAX_ID_CHARS} or has unprintable characters")
    if not body.issuer_org or not body.holder_org:
        raise bad("issuer and holder organisations are required")
    if len(body.purpose) > MAX_TEXT_CHARS:
        raise bad(f"purpose longer than {MAX_TEXT_CHARS} characters")
    if body.holder_public_key and len(body.holder_public_key) != 32:
        raise bad("holder public key is not a 32-byte Ed25519 key")
    if not body.camera_ids and not body.area_prefixes:
        raise bad("scope is empty (no cameras, no areas)")
    if len(body.camera_ids) + len(body.area_prefixes) > MAX_SCOPE_ITEMS:
        raise bad(f"scope has more than {MAX_SCOPE_ITEMS} items")
    for cam in body.camera_ids:
        if not cam or len(cam) > MAX_ID_CHARS or "/" in cam:
            raise bad(f"camera id {cam[:40]!r} is empty, too long or contains '/'")
    for prefix in body.area_prefixes:
        try:
            check_area(prefix)
        except ValueError as exc:
            raise bad(f"area prefix {prefix[:40]!r}: {exc}") from None
    if not body.resource_classes <= RESOURCE_CLASSES:
        raise bad(f"resource classes must be among {sorted(RESOURCE_CLASSES)}")
    if not body.operations:
        raise bad("no operations")
    if body.footage_to_us <= body.footage_from_us:
        raise bad("footage window is empty ([from, to) needs from < to)")
    if body.expires_us <= body.not_before_us:
        raise bad("expires before it becomes valid")
    if body.download_limit < 0:
        raise bad("negative download limit")
    if body.window_us > DAY_US and not body.case_id:
        raise GrantRefused(
            Reason.CASE_REQUIRED,
            f"grant {body.grant_id}: a footage window over 24 h needs a case id",
        )
    return body
