"""The fault-control commands of the GStreamer server process, carried out on the cameras.

Loaded by file path inside /usr/bin/python3 (see gst_server.py), like gst_camera.py. Runs on
the HTTP threads: a command that needs a new loop encodes it here (slow, off the main loop),
then hands the change to the main loop through `caller` (fast) and answers with the camera's
state. Parsing happened before (control_api.py): a malformed request never gets here.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil_camsim.core import CameraSpec
    from vigil_camsim.gst_camera import Camera, Runtime
    from vigil_camsim.gst_loops import AudioLoop, Loop

Answer = tuple[int, dict[str, Any]]


def _error(status: int, message: str) -> Answer:
    return status, {"error": message, "status": status}


class Commands:
    """`execute(command)` -> (HTTP status, JSON body) for one parsed control request."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._reserved: set[str] = set()
        self._ids_lock = threading.Lock()

    def execute(self, command: Any) -> Answer:
        rt, api = self.rt, self.rt.api
        if not rt.ready:
            return 503, {"error": "cameras are being prepared", "status": 503, "ok": False}
        if isinstance(command, api.Health):
            return 200, {"ok": True, "cameras": len(rt.cameras)}
        if isinstance(command, api.ListCameras):
            return 200, {"cameras": rt.caller.call(rt.snapshot_all)}
        if isinstance(command, api.AddCamera):
            return self._add(command)
        camera = rt.cameras.get(command.camera_id)
        if camera is None:
            return _error(404, f"no camera {command.camera_id!r}")
        try:
            self._on_camera(camera, command)
        except (rt.core.SpecError, rt.profiles.ProfileError) as exc:
            return _error(400, str(exc))
        return 200, rt.caller.call(lambda: rt.snapshot(camera))

    def _on_camera(self, camera: Camera, command: Any) -> None:
        rt, api = self.rt, self.rt.api
        if isinstance(command, api.CameraAction):
            actions = {
                "stop": lambda: rt.stop(camera),
                "start": lambda: rt.start(camera),
                "stall": lambda: rt.stall(camera, True),
                "unstall": lambda: rt.stall(camera, False),
                "drop": lambda: rt._close_clients(camera),
            }
            rt.caller.call(actions[command.action])
        elif isinstance(command, api.SetResolution):
            spec = camera.spec.at_resolution(command.width, command.height)
            loop = rt.library.get(spec, rt.core.cache_key(spec))
            rt.caller.call(lambda: rt.switch(camera, loop))
        elif isinstance(command, api.SetPicture):
            spec = camera.spec.with_picture(command.fault)
            loop = rt.library.get(spec, rt.core.cache_key(spec))
            rt.caller.call(lambda: self._picture(camera, spec, loop))
        elif isinstance(command, api.BreakGop):
            rt.caller.call(lambda: rt.break_gop(camera, command.gops))
        elif isinstance(command, api.Corrupt):
            rt.caller.call(lambda: rt.corrupt(camera, command.frames))
        elif isinstance(command, api.SetProfile):
            spec = self._with_profile(camera.spec, command.profile)
            loop, audio = self._loops(spec)
            rt.caller.call(lambda: rt.reprofile(camera, spec, loop, audio))

    def _picture(self, camera: Any, spec: CameraSpec, loop: Any) -> None:
        """On the main thread: remember the fault (snapshots, later switches), then switch."""
        camera.spec = spec
        self.rt.switch(camera, loop)

    def _with_profile(self, spec: CameraSpec, name: str) -> CameraSpec:
        p = self.rt.profiles.parse_profile(name)
        return self.rt.core.with_profile(spec, p.name, p.codec, p.bframes, p.audio)  # type: ignore[no-any-return]

    def _loops(self, spec: CameraSpec) -> tuple[Loop, AudioLoop | None]:
        rt = self.rt
        loop = rt.library.get(spec, rt.core.cache_key(spec))
        fmt = None if spec.audio is None else rt.profiles.AUDIO[spec.audio]
        return loop, None if fmt is None else rt.library.get_audio(fmt)

    def _add(self, command: Any) -> Answer:
        rt = self.rt
        with self._ids_lock:
            camera_id = command.camera_id
            if camera_id is None:
                n = 1
                while str(n) in rt.cameras or str(n) in self._reserved:
                    n += 1
                camera_id = str(n)
            if camera_id in rt.cameras or camera_id in self._reserved:
                return _error(409, f"camera {camera_id!r} exists")
            self._reserved.add(camera_id)
        try:
            base = rt.defaults
            spec = dataclasses.replace(
                base,
                camera_id=camera_id,
                label=command.label or f"{rt.label_prefix} {camera_id}",
                width=command.width or base.width,
                height=command.height or base.height,
            ).validated()
            if command.profile is not None:
                spec = self._with_profile(spec, command.profile)
            loop, audio = self._loops(spec)
            camera = rt.caller.call(lambda: rt.add_camera(spec, loop, audio))
            return 201, rt.caller.call(lambda: rt.snapshot(camera))
        except (rt.core.SpecError, rt.profiles.ProfileError) as exc:
            return _error(400, str(exc))
        finally:
            with self._ids_lock:
                self._reserved.discard(camera_id)
