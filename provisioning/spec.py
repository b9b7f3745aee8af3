"""What the installer says about a device, parsed and checked without I/O.

A camera is `ID=rtsp://user:pass@host/path` (credentials are split off here and kept apart
from the URL from then on), `ID=nvr:/path/to/folder` (an NVR's recording folder) or
`ID=handheld:/path`. A batch CSV has one device per row:

    device_id,county,site,kind,cameras
    nvr-wudu-001,wudu,v001,nvr,cam-1=rtsp://admin:pw@192.168.1.64/Streaming/1;cam-2=nvr:/mnt/nvr/ch2

`parse_rows` returns every good row and, for every bad one, its line number and why.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    county: str
    site: str
    kind: str
    cameras: tuple[CameraSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceSpec:
        cams = tuple(CameraSpec(**c) for c in data["cameras"])
        return cls(data["device_id"], data["county"], data["site"], data["kind"], cams)


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


def device_spec(
    device_id: str, county: str, site: str, kind: str, cameras: list[CameraSpec]
) -> DeviceSpec:
    check_id(device_id, "device id")
    check_id(county, "county")
    check_id(site, "site")
    if kind not in KINDS:
        raise SpecError(f"kind must be one of {', '.join(KINDS)}, not {kind[:16]!r}")
    ids = [c.camera_id for c in cameras]
    if len(set(ids)) != len(ids):
        raise SpecError("a camera id appears twice")
    return DeviceSpec(device_id, county, site, kind, tuple(cameras))


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
            spec = device_spec(
                (row["device_id"] or "").strip(),
                (row["county"] or "").strip(),
                (row["site"] or "").strip(),
                (row["kind"] or "nvr").strip(),
                cams,
            )
            if spec.device_id in seen:
                raise SpecError(f"device {spec.device_id} appears twice")
            seen.add(spec.device_id)
            good.append(spec)
        except SpecError as exc:
            bad.append((line, str(exc)))
    return good, bad
