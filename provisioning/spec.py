"""What the installer says about a device, parsed and checked without I/O.

A camera is `ID=rtsp://user:pass@host/path` (credentials are split off here and kept apart
from the URL from then on), `ID=nvr:/path/to/folder` (an NVR's recording folder) or
`ID=handheld:/path`. A batch CSV has one device per row (`fps`, optional: the frame rate
its cameras are set to, which `verify` expects; `gb_code`, optional: the device's GB/T 28181
code from the county's list):

    device_id,county,site,kind,cameras,fps,gb_code
    nvr-wudu-001,wudu,v001,nvr,cam-1=rtsp://admin:pw@192.168.1.64/Streaming/1,25,62120200001180000001

`parse_rows` returns every good row and, for every bad one, its line number and why.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KINDS = ("nvr", "handheld")
COLUMNS = ("device_id", "county", "site", "kind", "cameras")


class SpecError(ValueError):
    """Bad input from the installer; the message names the field (never a password)."""


@dataclass(frozen=True)
class CameraSpec:
    camera_id: str
    kind: str  # rtsp | nvr_folder | handheld_folder
    url: str = ""  # rtsp URL without credentials
    path: str = ""
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    fps: float = 0.0  # the frame rate the camera is set to (0: not given); verify checks it


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    county: str
    site: str
    kind: str
    cameras: tuple[CameraSpec, ...]
    gb_code: str = ""  # GB/T 28181 code from the county's list ("" : none yet)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceSpec:
        cams = tuple(CameraSpec(**c) for c in data["cameras"])
        return cls(
            data["device_id"], data["county"], data["site"], data["kind"], cams,
            str(data.get("gb_code") or ""),
        )  # fmt: skip


def check_id(value: str, what: str) -> str:
    if not ID_RE.fullmatch(value):
        raise SpecError(f"invalid {what} {value[:64]!r}: 1-64 of A-Z a-z 0-9 _ . -")
    return value


def split_credentials(url: str) -> tuple[str, str, str]:
    """(url without credentials, username, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise SpecError("camera URL must be rtsp://[user:pass@]host[:port]/path")
    host = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(parts.username or ""), unquote(parts.password or "")


def parse_camera(text: str) -> CameraSpec:
    camera_id, sep, target = text.strip().partition("=")
    if not sep or not target:
        raise SpecError("a camera is ID=rtsp://..., ID=nvr:/folder or ID=handheld:/folder")
    check_id(camera_id, "camera id")
    for prefix, kind in (("nvr:", "nvr_folder"), ("handheld:", "handheld_folder")):
        if target.startswith(prefix):
            path = target[len(prefix) :]
            if not path.startswith("/"):
                raise SpecError(f"camera {camera_id}: folder must be an absolute path")
            return CameraSpec(camera_id, kind, path=path)
    try:
        url, user, password = split_credentials(target)
    except SpecError as exc:
        raise SpecError(f"camera {camera_id}: {exc}") from None
    return CameraSpec(camera_id, "rtsp", url=url, username=user, password=password)


FPS_MIN, FPS_MAX = 1.0, 120.0


def check_fps(text: str) -> float:
    """An expected frame rate from the installer ("" = not given = 0)."""
    if not text.strip():
        return 0.0
    try:
        fps = float(text)
    except ValueError:
        raise SpecError(f"frame rate must be a number, not {text[:16]!r}") from None
    if not FPS_MIN <= fps <= FPS_MAX:
        raise SpecError(f"frame rate must be between {FPS_MIN:g} and {FPS_MAX:g} fps")
    return fps


def with_fps(cameras: list[CameraSpec], fps: float) -> list[CameraSpec]:
    """Cameras with no expected frame rate of their own get `fps` (0 leaves them)."""
    return [replace(c, fps=fps) if fps and not c.fps else c for c in cameras]


def check_gb_code(code: str) -> str:
    """20 digits or "" (the controller checks type and county)."""
    code = code.strip()
    if code and (len(code) != 20 or not code.isascii() or not code.isdigit()):
        raise SpecError(f"GB/T 28181 code must be 20 digits, not {code[:24]!r}")
    return code


def device_spec(
    device_id: str,
    county: str,
    site: str,
    kind: str,
    cameras: list[CameraSpec],
    gb_code: str = "",
) -> DeviceSpec:
    check_id(device_id, "device id")
    check_id(county, "county")
    check_id(site, "site")
    if kind not in KINDS:
        raise SpecError(f"kind must be one of {', '.join(KINDS)}, not {kind[:16]!r}")
    ids = [c.camera_id for c in cameras]
    if len(set(ids)) != len(ids):
        raise SpecError("a camera id appears twice")
    return DeviceSpec(device_id, county, site, kind, tuple(cameras), check_gb_code(gb_code))


def parse_rows(text: str) -> tuple[list[DeviceSpec], list[tuple[int, str]]]:
    """(good devices, [(line, why)] for bad rows). A duplicate device id is bad on its
    second appearance."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        return [], [(1, f"header lacks column(s): {', '.join(missing)}")]
    good: list[DeviceSpec] = []
    bad: list[tuple[int, str]] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        try:
            cams = [parse_camera(c) for c in (row["cameras"] or "").split(";") if c.strip()]
            cams = with_fps(cams, check_fps(row.get("fps") or ""))
            spec = device_spec(
                (row["device_id"] or "").strip(),
                (row["county"] or "").strip(),
                (row["site"] or "").strip(),
                (row["kind"] or "nvr").strip(),
                cams,
                row.get("gb_code") or "",
            )
            if spec.device_id in seen:
                raise SpecError(f"device {spec.device_id} appears twice")
            seen.add(spec.device_id)
            good.append(spec)
        except SpecError as exc:
            bad.append((line, str(exc)))
    return good, bad
