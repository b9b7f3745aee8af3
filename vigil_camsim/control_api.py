"""The fault-control HTTP API of the camera emulator, as a pure request parser.

Loaded by both interpreters like `core.py` (standard library only, no project imports). The
server's HTTP handler turns (method, path, body) into a Command here, or an ApiError with the
status and message to send back, before it touches any camera: a malformed request changes
nothing.

Routes (JSON in and out):
  GET  /health                         {"ok": true}
  GET  /cameras                        {"cameras": [camera, ...]}
  GET  /cameras/<id>                   camera
  POST /cameras                        {"id"?, "label"?, "width"?, "height"?, "profile"?}  add one
  POST /cameras/<id>/stop|start        refuse new clients and close current ones / serve again
  POST /cameras/<id>/stall|unstall     keep connections open but send nothing / resume
  POST /cameras/<id>/drop              close current client connections; reconnects work
  POST /cameras/<id>/resolution        {"width", "height"}  switch at the next keyframe
  POST /cameras/<id>/broken_gop        {"gops"?: 1..10}  withhold the next IDR(s)
  POST /cameras/<id>/corrupt           {"frames"?: 1..250}  damage the next access unit(s)
  POST /cameras/<id>/profile           {"profile": "h265-pcma"}  become another kind of camera
                                       (codec/audio): sessions end, reconnects get the new one
  POST /cameras/<id>/picture           {"fault": "frozen|black|blurred|none"}  next keyframe on
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

MAX_BODY_BYTES = 16 * 1024
MAX_BROKEN_GOPS = 10
MAX_CORRUPT_FRAMES = 250
_PROFILE = re.compile(r"^[a-z0-9-]{1,40}$")  # the name itself is checked by profiles.py

Action = Literal["stop", "start", "stall", "unstall", "drop"]
_ACTIONS: tuple[Action, ...] = ("stop", "start", "stall", "unstall", "drop")
_ID = r"[A-Za-z0-9_-]{1,32}"
_CAMERA_PATH = re.compile(rf"^/cameras/(?P<id>{_ID})(?:/(?P<verb>[a-z_]+))?/?$")


@dataclass(frozen=True)
class ApiError:
    status: int
    message: str

    def body(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


@dataclass(frozen=True)
class Health:
    pass


@dataclass(frozen=True)
class ListCameras:
    pass


@dataclass(frozen=True)
class GetCamera:
    camera_id: str


@dataclass(frozen=True)
class CameraAction:
    camera_id: str
    action: Action


@dataclass(frozen=True)
class SetPicture:
    """Send a frozen, black or blurred picture (or a normal one again) from the next keyframe."""

    camera_id: str
    fault: str


@dataclass(frozen=True)
class SetResolution:
    camera_id: str
    width: int
    height: int


@dataclass(frozen=True)
class BreakGop:
    camera_id: str
    gops: int


@dataclass(frozen=True)
class Corrupt:
    camera_id: str
    frames: int


@dataclass(frozen=True)
class SetProfile:
    camera_id: str
    profile: str


@dataclass(frozen=True)
class AddCamera:
    camera_id: str | None
    label: str | None
    width: int | None
    height: int | None
    profile: str | None = None


Command = (
    Health
    | ListCameras
    | GetCamera
    | CameraAction
    | SetResolution
    | SetPicture
    | BreakGop
    | Corrupt
    | SetProfile
    | AddCamera
)


def check_body_length(content_length: str | None) -> ApiError | None:
    """Refuse an oversize or unreadable Content-Length before reading the body."""
    if content_length is None or content_length == "":
        return None
    try:
        n = int(content_length)
    except ValueError:
        return ApiError(400, "Content-Length is not a number")
    if n < 0:
        return ApiError(400, "Content-Length is negative")
    if n > MAX_BODY_BYTES:
        return ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return None


def parse_request(method: str, path: str, body: bytes) -> Command | ApiError:
    """Map one HTTP request to a Command, or to the error to answer with."""
    path = path.split("?", 1)[0]
    if len(body) > MAX_BODY_BYTES:
        return ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if path in ("/health", "/health/"):
        return _only(method, "GET", Health())
    if path in ("/cameras", "/cameras/"):
        if method == "GET":
            return ListCameras()
        if method != "POST":
            return ApiError(405, f"{method} not allowed on /cameras")
        return _parse_add(body)
    match = _CAMERA_PATH.match(path)
    if match is None:
        if path.startswith("/cameras/"):
            return ApiError(404, "unknown camera id or route")
        return ApiError(404, f"no route {path!r}")
    camera_id, verb = match.group("id"), match.group("verb")
    if verb is None:
        return _only(method, "GET", GetCamera(camera_id))
    if method != "POST":
        return ApiError(405, f"{method} not allowed on {path}; use POST")
    if verb in _ACTIONS:
        return CameraAction(camera_id, verb)
    if verb == "resolution":
        return _parse_resolution(camera_id, body)
    if verb == "broken_gop":
        return _parse_broken_gop(camera_id, body)
    if verb == "corrupt":
        return _parse_corrupt(camera_id, body)
    if verb == "profile":
        return _parse_profile(camera_id, body)
    if verb == "picture":
        return _parse_picture(camera_id, body)
    return ApiError(404, f"unknown action {verb!r}")


def _only(method: str, allowed: str, command: Command) -> Command | ApiError:
    return command if method == allowed else ApiError(405, f"{method} not allowed; use {allowed}")


def _json_object(body: bytes, required: bool) -> dict[str, object] | ApiError:
    if not body.strip():
        return ApiError(400, "JSON body required") if required else {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return ApiError(400, f"malformed JSON: {exc}")
    if not isinstance(value, dict):
        return ApiError(400, "JSON body must be an object")
    return value


def _int_field(obj: dict[str, object], name: str, low: int, high: int) -> int | ApiError:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return ApiError(400, f"{name!r} must be an integer")
    if not low <= value <= high:
        return ApiError(400, f"{name!r} must be in {low}..{high}")
    return value


def _unknown_fields(obj: dict[str, object], allowed: set[str]) -> ApiError | None:
    extra = sorted(set(obj) - allowed)
    return ApiError(400, f"unknown field(s): {', '.join(extra)}") if extra else None


def _parse_picture(camera_id: str, body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=True)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"fault"})) is not None:
        return err
    fault = obj.get("fault")
    if fault not in ("none", "frozen", "black", "blurred"):
        return ApiError(400, "'fault' must be one of: none, frozen, black, blurred")
    return SetPicture(camera_id, str(fault))


def _parse_resolution(camera_id: str, body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=True)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"width", "height"})) is not None:
        return err
    width = _int_field(obj, "width", 16, 3840)
    height = _int_field(obj, "height", 16, 2160)
    for v in (width, height):
        if isinstance(v, ApiError):
            return v
    assert isinstance(width, int) and isinstance(height, int)
    if width % 2 or height % 2:
        return ApiError(400, "width and height must be even")
    return SetResolution(camera_id, width, height)


def _parse_broken_gop(camera_id: str, body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=False)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"gops"})) is not None:
        return err
    if "gops" not in obj:
        return BreakGop(camera_id, 1)
    gops = _int_field(obj, "gops", 1, MAX_BROKEN_GOPS)
    return gops if isinstance(gops, ApiError) else BreakGop(camera_id, gops)


def _parse_corrupt(camera_id: str, body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=False)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"frames"})) is not None:
        return err
    if "frames" not in obj:
        return Corrupt(camera_id, 1)
    frames = _int_field(obj, "frames", 1, MAX_CORRUPT_FRAMES)
    return frames if isinstance(frames, ApiError) else Corrupt(camera_id, frames)


def _profile_field(obj: dict[str, object]) -> str | ApiError:
    value = obj.get("profile")
    if not isinstance(value, str) or not _PROFILE.match(value):
        return ApiError(400, "'profile' must be a profile name such as h265 or h264-bframes-pcma")
    return value


def _parse_profile(camera_id: str, body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=True)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"profile"})) is not None:
        return err
    profile = _profile_field(obj)
    return profile if isinstance(profile, ApiError) else SetProfile(camera_id, profile)


def _parse_add(body: bytes) -> Command | ApiError:
    obj = _json_object(body, required=False)
    if isinstance(obj, ApiError):
        return obj
    if (err := _unknown_fields(obj, {"id", "label", "width", "height", "profile"})) is not None:
        return err
    profile = None
    if "profile" in obj:
        checked = _profile_field(obj)
        if isinstance(checked, ApiError):
            return checked
        profile = checked
    camera_id = obj.get("id")
    if camera_id is not None and (
        not isinstance(camera_id, str) or not re.fullmatch(_ID, camera_id)
    ):
        return ApiError(400, f"'id' must match {_ID}")
    label = obj.get("label")
    if label is not None and (
        not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9 _.:-]{1,40}", label)
    ):
        return ApiError(400, "'label' must be 1-40 letters, digits, spaces or _.:-")
    sizes: dict[str, int | None] = {"width": None, "height": None}
    if ("width" in obj) != ("height" in obj):
        return ApiError(400, "give both 'width' and 'height', or neither")
    if "width" in obj:
        for name, high in (("width", 3840), ("height", 2160)):
            v = _int_field(obj, name, 16, high)
            if isinstance(v, ApiError):
                return v
            if v % 2:
                return ApiError(400, "width and height must be even")
            sizes[name] = v
    return AddCamera(camera_id, label, sizes["width"], sizes["height"], profile)
