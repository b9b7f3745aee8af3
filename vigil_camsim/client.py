"""Typed client for the camera emulator's fault-control API (see control_api.py for routes).

Tests and benchmarks drive faults through this: `client.stall("3")`, `client.drop(1)`, ... Each
call returns the camera's state after the change. An error answer from the server raises
CamsimApiError with its HTTP status and message; `request` gives raw access for tests that
send malformed input on purpose.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CameraId = str | int


class CamsimApiError(RuntimeError):
    """The control API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"camsim control API {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CameraInfo:
    """One camera as the server reports it."""

    id: str
    url: str
    label: str
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gop_frames: int
    loop_frames: int
    state: str
    stalled: bool
    clients: int
    streams: int
    frames_sent: int
    frames_withheld: int
    broken_gops_pending: int
    pending_resolution: tuple[int, int] | None
    profile: str = "h264"
    codec: str = "h264"
    bframes: int = 0
    audio: str | None = None  # "aac" | "pcma" | "pcmu"
    audio_units_sent: int = 0
    corrupt_pending: int = 0

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def gop_seconds(self) -> float:
        return self.gop_frames / self.fps

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CameraInfo:
        pending = obj.get("pending_resolution")
        return cls(
            id=str(obj["id"]),
            url=str(obj["url"]),
            label=str(obj["label"]),
            width=int(obj["width"]),
            height=int(obj["height"]),
            fps=int(obj["fps"]),
            bitrate_kbps=int(obj["bitrate_kbps"]),
            gop_frames=int(obj["gop_frames"]),
            loop_frames=int(obj["loop_frames"]),
            state=str(obj["state"]),
            stalled=bool(obj["stalled"]),
            clients=int(obj["clients"]),
            streams=int(obj["streams"]),
            frames_sent=int(obj["frames_sent"]),
            frames_withheld=int(obj["frames_withheld"]),
            broken_gops_pending=int(obj["broken_gops_pending"]),
            pending_resolution=None if pending is None else (int(pending[0]), int(pending[1])),
            profile=str(obj.get("profile", "h264")),
            codec=str(obj.get("codec", "h264")),
            bframes=int(obj.get("bframes", 0)),
            audio=None if obj.get("audio") is None else str(obj["audio"]),
            audio_units_sent=int(obj.get("audio_units_sent", 0)),
            corrupt_pending=int(obj.get("corrupt_pending", 0)),
        )


class CamsimClient:
    """`CamsimClient("http://127.0.0.1:8555")`; one short HTTP connection per call."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"control URL must be http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port
        # Encoding a loop for a new resolution or camera can take seconds at 1080p.
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send one request; (status, decoded JSON body). Raises nothing for 4xx/5xx."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"error": raw.decode(errors="replace")}
        return response.status, payload if isinstance(payload, dict) else {"value": payload}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, payload = self.request(method, path, body)
        if status >= 400:
            raise CamsimApiError(status, str(payload.get("error", payload)))
        return payload

    def _action(
        self, camera_id: CameraId, verb: str, body: dict[str, Any] | None = None
    ) -> CameraInfo:
        return CameraInfo.from_json(self._call("POST", f"/cameras/{camera_id}/{verb}", body))

    def health(self) -> bool:
        try:
            return self._call("GET", "/health").get("ok") is True
        except (OSError, CamsimApiError):
            return False

    def cameras(self) -> list[CameraInfo]:
        return [CameraInfo.from_json(c) for c in self._call("GET", "/cameras")["cameras"]]

    def camera(self, camera_id: CameraId) -> CameraInfo:
        return CameraInfo.from_json(self._call("GET", f"/cameras/{camera_id}"))

    def stop(self, camera_id: CameraId) -> CameraInfo:
        """Close the camera's clients and answer new ones with 404 until `start`."""
        return self._action(camera_id, "stop")

    def start(self, camera_id: CameraId) -> CameraInfo:
        return self._action(camera_id, "start")

    def stall(self, camera_id: CameraId) -> CameraInfo:
        """Keep connections open but send no frames (clients hit their read timeout)."""
        return self._action(camera_id, "stall")

    def unstall(self, camera_id: CameraId) -> CameraInfo:
        """Resume; each client gets frames again from the next keyframe."""
        return self._action(camera_id, "unstall")

    def drop(self, camera_id: CameraId) -> CameraInfo:
        """Close current client connections; the camera accepts reconnects at once."""
        return self._action(camera_id, "drop")

    def set_resolution(self, camera_id: CameraId, width: int, height: int) -> CameraInfo:
        """Switch to a loop of width x height at the next keyframe (encodes it if new)."""
        return self._action(camera_id, "resolution", {"width": width, "height": height})

    def set_picture(self, camera_id: CameraId, fault: str) -> CameraInfo:
        """Send a "frozen", "black" or "blurred" picture from the next keyframe ("none": a
        normal one again); image health on the agent should notice within two samples."""
        return self._action(camera_id, "picture", {"fault": fault})

    def broken_gop(self, camera_id: CameraId, gops: int = 1) -> CameraInfo:
        """Withhold the next `gops` IDR frames: P-frames then reference a frame never sent."""
        return self._action(camera_id, "broken_gop", {"gops": gops})

    def corrupt(self, camera_id: CameraId, frames: int = 1) -> CameraInfo:
        """Damage the next `frames` access units (slice data scrambled, NAL headers and
        parameter sets intact): decoders report errors, parsers and the RTSP session do not."""
        return self._action(camera_id, "corrupt", {"frames": frames})

    def set_profile(self, camera_id: CameraId, profile: str) -> CameraInfo:
        """Become another kind of camera (e.g. "h265-pcma"): current sessions end, clients
        that reconnect get the new codec/audio (how a re-configured camera switches codec)."""
        return self._action(camera_id, "profile", {"profile": profile})

    def add_camera(
        self,
        camera_id: str | None = None,
        label: str | None = None,
        width: int | None = None,
        height: int | None = None,
        profile: str | None = None,
    ) -> CameraInfo:
        body: dict[str, Any] = {}
        if profile is not None:
            body["profile"] = profile
        if camera_id is not None:
            body["id"] = camera_id
        if label is not None:
            body["label"] = label
        if width is not None or height is not None:
            body["width"], body["height"] = width, height
        return CameraInfo.from_json(self._call("POST", "/cameras", body))
