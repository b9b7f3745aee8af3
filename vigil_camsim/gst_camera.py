"""Cameras of the GStreamer server process: RTSP mounts, frame pushing and the fault commands.

Loaded by file path inside /usr/bin/python3 (see gst_server.py); the gi modules and the pure
siblings come in as constructor arguments, so this file imports neither at run time.

Threads: GLib's main loop runs the pacing timers, the fault commands and the RTSP server.
The HTTP threads run gst_commands.Commands, which encodes new loops on its own thread (slow)
and then hands the change (`switch`, `reprofile`, ...) to the main loop (fast). Client
pipelines appear and vanish on RTSP threads, so each camera's sink list is guarded by a lock.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil_camsim.core import AudioClock, CameraSpec, Emit, Feed, Schedule
    from vigil_camsim.gst_loops import AudioLoop, Loop


@dataclass
class Sink:
    """One client pipeline's appsrc, and where its timestamps start."""

    appsrc: Any
    media: Any
    audio: Any = None  # the audio appsrc, when the camera has sound
    started: bool = False
    pts0: int | None = None
    t0: float = 0.0


@dataclass
class Camera:
    spec: CameraSpec
    path: str
    factory: Any  # the RTSP media factory (replaced when the profile changes)
    feed: Feed
    schedule: Schedule
    loops: dict[str, Loop] = field(default_factory=dict)
    # One GLib.Bytes per access unit: every push wraps it in a buffer of its own (no copy).
    buffers: dict[str, list[Any]] = field(default_factory=dict)
    running: bool = True
    stalled: bool = False
    sinks: list[Sink] = field(default_factory=list)
    clients: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    frames_sent: int = 0
    frames_withheld: int = 0
    timer: int = 0
    audio: AudioLoop | None = None
    audio_buffers: list[Any] = field(default_factory=list)
    audio_clock: AudioClock | None = None
    audio_sent: int = 0
    corrupt_left: int = 0  # access units still to damage (the corrupt-NAL fault)

    def current_loop(self) -> Loop:
        return self.loops[self.feed.loop]


class Runtime:
    """All cameras of one server process and the fault commands on them."""

    def __init__(
        self,
        *,
        gst: Any,
        rtsp: Any,
        glib: Any,
        core: Any,
        api: Any,
        library: Any,
        profiles: Any,
        caller: Any,
        address: str,
        port: int,
        defaults: CameraSpec,
        label_prefix: str,
        stamp_wallclock: bool = False,
    ) -> None:
        self.gst, self.rtsp, self.glib = gst, rtsp, glib
        self.core, self.api, self.library, self.caller = core, api, library, caller
        self.profiles = profiles
        self.address, self.port = address, port
        self.defaults, self.label_prefix = defaults, label_prefix
        # Each frame carries its send time as SEI (core.with_wallclock): glass-to-glass latency.
        self.stamp_wallclock = stamp_wallclock
        self.cameras: dict[str, Camera] = {}
        self.server = rtsp.RTSPServer()
        self.server.set_address(address)
        self.server.set_service(str(port))
        self.server.connect("client-connected", self._on_client)
        # The default pool serves every client from ONE thread, and a DESCRIBE blocks its
        # thread until the media has seen a keyframe (up to a GOP): clients would be set up
        # one after the other. A thread per client lets a rig's cameras all connect at once.
        self.server.get_thread_pool().set_max_threads(-1)
        self.mounts = self.server.get_mount_points()
        self._source_id = 0
        self.ready = False  # set once the initial cameras are served; /health says 503 before

    # --- lifecycle (main thread) ---------------------------------------------------------

    def attach(self) -> bool:
        self._source_id = self.server.attach(None)
        if self._source_id:
            # Sessions of clients that vanished without TEARDOWN (a killed UDP client keeps
            # being sent packets) are only reaped when the pool is asked to.
            pool = self.server.get_session_pool()
            self.glib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)
        return bool(self._source_id)

    def url(self, camera_id: str) -> str:
        return f"rtsp://{self.address}:{self.port}/cam/{camera_id}"

    def add_camera(self, spec: CameraSpec, loop: Loop, audio: AudioLoop | None = None) -> Camera:
        origin = time.monotonic()
        camera = Camera(
            spec=spec,
            path=f"/cam/{spec.camera_id}",
            factory=None,
            feed=self.core.Feed(loop=loop.key, loop_len=len(loop.frames), gop=spec.gop_frames),
            schedule=self.core.Schedule(origin=origin, fps=spec.fps),
        )
        camera.factory = self._factory(camera, spec, audio)
        self._install_loop(camera, loop)
        self._set_audio(camera, audio, origin)
        self.mounts.add_factory(camera.path, camera.factory)
        self.cameras[spec.camera_id] = camera
        self._arm(camera)
        return camera

    def close(self) -> None:
        for camera in self.cameras.values():
            if camera.timer:
                self.glib.source_remove(camera.timer)
                camera.timer = 0
            self._close_clients(camera)

    def _factory(self, camera: Camera, spec: CameraSpec, audio: AudioLoop | None) -> Any:
        factory = self.rtsp.RTSPMediaFactory()
        factory.set_launch(self.profiles.media_launch(spec.codec, audio and audio.fmt))
        factory.set_shared(False)
        factory.connect("media-configure", lambda _f, media: self._on_media(camera, media))
        return factory

    def _set_audio(self, camera: Camera, audio: AudioLoop | None, origin: float) -> None:
        """The camera's sound (or none), its clock starting at `origin` like its video's."""
        camera.audio = audio
        camera.audio_buffers = (
            [] if audio is None else [self.glib.Bytes.new(u) for u in audio.units]
        )
        camera.audio_clock = (
            None
            if audio is None
            else self.core.AudioClock(origin=origin, rate=audio.fmt.rate, samples=audio.fmt.samples)
        )

    def _install_loop(self, camera: Camera, loop: Loop) -> None:
        """Hold each access unit as GLib.Bytes once; every push wraps it in a new buffer.

        Why not one Gst.Buffer per unit and `copy()` per client: PyGObject's `Buffer.copy()`
        hands back the same GstBuffer, so stamping it for one client re-stamped it for all
        and a second client made the first one's clock jump back and forth.
        """
        camera.loops[loop.key] = loop
        camera.buffers[loop.key] = [self.glib.Bytes.new(frame) for frame in loop.frames]

    # --- RTSP callbacks (RTSP threads) -----------------------------------------------------

    def _on_client(self, _server: Any, client: Any) -> None:
        client.connect("describe-request", self._on_request)
        client.connect("setup-request", self._on_request)
        client.connect("closed", self._on_closed)

    def _camera_for_path(self, path: str) -> Camera | None:
        for camera in list(self.cameras.values()):
            if path == camera.path or path.startswith(camera.path + "/"):
                return camera
        return None

    def _on_request(self, client: Any, ctx: Any) -> None:
        uri = ctx.uri
        camera = self._camera_for_path(uri.abspath if uri is not None else "")
        if camera is not None:
            with camera.lock:
                if client not in camera.clients:
                    camera.clients.append(client)

    def _on_closed(self, client: Any) -> None:
        for camera in list(self.cameras.values()):
            with camera.lock:
                if client in camera.clients:
                    camera.clients.remove(client)

    def _on_media(self, camera: Camera, media: Any) -> None:
        element = media.get_element()
        sink = Sink(
            appsrc=element.get_by_name("src"), media=media, audio=element.get_by_name("asrc")
        )
        with camera.lock:
            camera.sinks.append(sink)
        media.connect("unprepared", lambda _m: self._forget_sink(camera, sink))

    def _forget_sink(self, camera: Camera, sink: Sink) -> None:
        with camera.lock:
            if sink in camera.sinks:
                camera.sinks.remove(sink)

    # --- pacing (main thread) --------------------------------------------------------------

    def _arm(self, camera: Camera) -> None:
        delay = camera.schedule.next_deadline() - time.monotonic()
        ms = max(0, math.ceil(delay * 1000))
        camera.timer = self.glib.timeout_add(ms, self._tick, camera)

    def _tick(self, camera: Camera) -> bool:
        try:
            count, camera.schedule = self.core.plan_tick(camera.schedule, time.monotonic())
            first = camera.schedule.emitted - count
            for i in range(count):
                emit, camera.feed = self.core.advance(camera.feed)
                due = camera.schedule.due_at(first + i)
                self._send(camera, emit, due)
                if camera.audio_clock is not None:
                    self._send_audio(camera, due)
        except Exception:  # one bad frame must not silence the camera for good
            sys.stderr.write(f"camera {camera.spec.camera_id}: {traceback.format_exc()}")
        finally:
            self._arm(camera)
        return False  # one-shot: re-armed for the next absolute deadline

    def _send(self, camera: Camera, emit: Emit, due: float) -> None:
        if emit.index is None:
            camera.frames_withheld += 1
            return
        loop = camera.loops[emit.loop]
        if (loop.width, loop.height) != (camera.spec.width, camera.spec.height):
            camera.spec = dataclasses.replace(camera.spec, width=loop.width, height=loop.height)
        if camera.stalled or not camera.running:
            return
        data = camera.buffers[emit.loop][emit.index]
        if camera.corrupt_left > 0:
            camera.corrupt_left -= 1
            data = self.glib.Bytes.new(self.core.corrupt_access_unit(loop.frames[emit.index]))
        elif self.stamp_wallclock:
            stamped = self.core.with_wallclock(
                loop.frames[emit.index], camera.spec.codec, time.time_ns() // 1000
            )
            data = self.glib.Bytes.new(stamped)
        duration = 1_000_000_000 // camera.spec.fps
        # B-frames: the schedule gives the decode time; the presentation time is later by
        # the access unit's composition offset (0 without B-frames: PTS == DTS as before).
        shift = loop.offset(emit.index) * duration
        with camera.lock:
            sinks = list(camera.sinks)
        for sink in sinks:
            if sink.appsrc is None:
                continue  # an audio-only camera: the frame only paces the audio
            if not self.core.gate(sink.started, emit.keyframe):
                continue
            if sink.pts0 is None:
                running = sink.appsrc.get_current_running_time()
                if running is None or running == self.gst.CLOCK_TIME_NONE:
                    continue  # not playing yet
                sink.pts0, sink.t0 = int(running), due
            sink.started = True
            buf = self.gst.Buffer.new_wrapped_bytes(data)  # this client's own buffer
            if not emit.keyframe:
                buf.set_flags(self.gst.BufferFlags.DELTA_UNIT)
            buf.dts = sink.pts0 + int(round((due - sink.t0) * 1e9))
            buf.pts = buf.dts + shift
            buf.duration = duration
            sink.appsrc.emit("push-buffer", buf)
            camera.frames_sent += 1

    def _send_audio(self, camera: Camera, until: float) -> None:
        """Send the audio access units due by `until` to every client that receives video,
        stamped on the same base as its video (so A/V stay in sync); on an audio-only camera,
        to every client from its first unit on."""
        assert camera.audio_clock is not None and camera.audio is not None
        count, clock = self.core.plan_audio(camera.audio_clock, until)
        camera.audio_clock = clock
        if count == 0 or camera.stalled or not camera.running:
            return
        fmt = camera.audio.fmt
        # Video PTS run `reorder delay` frames after the schedule (see _send); so does audio.
        delay = camera.current_loop().offset(0) * 1_000_000_000 // camera.spec.fps
        with camera.lock:
            sinks = [s for s in camera.sinks if s.audio is not None]
        for sink in sinks:
            if sink.appsrc is None and not sink.started:  # audio only: (re)start on any unit
                if sink.pts0 is None:
                    running = sink.audio.get_current_running_time()
                    if running is None or running == self.gst.CLOCK_TIME_NONE:
                        continue  # not playing yet
                    sink.pts0, sink.t0 = int(running), clock.due_at(clock.sent - count)
                sink.started = True
        sinks = [s for s in sinks if s.started]
        units = len(camera.audio_buffers)
        for unit in range(clock.sent - count, clock.sent):
            at = clock.due_at(unit)
            data = camera.audio_buffers[unit % units]
            for sink in sinks:
                if sink.pts0 is None or at < sink.t0:
                    continue  # before this client's first video frame
                buf = self.gst.Buffer.new_wrapped_bytes(data)
                buf.pts = buf.dts = sink.pts0 + delay + int(round((at - sink.t0) * 1e9))
                buf.duration = int(fmt.chunk_ns)
                sink.audio.emit("push-buffer", buf)
            camera.audio_sent += 1

    # --- faults (main thread) --------------------------------------------------------------

    def _close_clients(self, camera: Camera) -> int:
        with camera.lock:
            clients = list(camera.clients)
            camera.clients.clear()
        for client in clients:
            client.close()
        return len(clients)

    def stop(self, camera: Camera) -> None:
        if camera.running:
            self.mounts.remove_factory(camera.path)
            camera.running = False
        self._close_clients(camera)

    def start(self, camera: Camera) -> None:
        if not camera.running:
            self.mounts.add_factory(camera.path, camera.factory)
            camera.running = True

    def stall(self, camera: Camera, stalled: bool) -> None:
        if camera.stalled and not stalled:
            with camera.lock:
                for sink in camera.sinks:
                    sink.started = False  # resume at the next keyframe
        camera.stalled = stalled

    def snapshot(self, camera: Camera) -> dict[str, Any]:
        pending = camera.feed.pending
        with camera.lock:
            clients, sinks = len(camera.clients), len(camera.sinks)
        spec = camera.spec
        return {
            "id": spec.camera_id,
            "url": self.url(spec.camera_id),
            "label": spec.label,
            "width": spec.width,
            "height": spec.height,
            "fps": spec.fps,
            "bitrate_kbps": spec.bitrate_kbps,
            "gop_frames": spec.gop_frames,
            "loop_frames": spec.loop_frames,
            "profile": spec.profile,
            "codec": spec.codec,
            "bframes": spec.bframes,
            "audio": spec.audio,
            "audio_units_sent": camera.audio_sent,
            "state": "running" if camera.running else "stopped",
            "stalled": camera.stalled,
            "clients": clients,
            "streams": sinks,
            "frames_sent": camera.frames_sent,
            "frames_withheld": camera.frames_withheld,
            "broken_gops_pending": camera.feed.drop_idrs,
            "corrupt_pending": camera.corrupt_left,
            "pending_resolution": (
                None
                if pending is None
                else [camera.loops[pending[0]].width, camera.loops[pending[0]].height]
            ),
        }

    def snapshot_all(self) -> list[dict[str, Any]]:
        return [self.snapshot(c) for c in self.cameras.values()]

    def switch(self, camera: Camera, loop: Loop) -> None:
        """Switch to `loop` (another resolution) at the next keyframe."""
        if loop.key not in camera.loops:
            self._install_loop(camera, loop)
        camera.feed = dataclasses.replace(camera.feed, pending=(loop.key, len(loop.frames)))

    def break_gop(self, camera: Camera, gops: int) -> None:
        camera.feed = dataclasses.replace(camera.feed, drop_idrs=camera.feed.drop_idrs + gops)

    def corrupt(self, camera: Camera, frames: int) -> None:
        camera.corrupt_left += frames

    def reprofile(
        self, camera: Camera, spec: CameraSpec, loop: Loop, audio: AudioLoop | None
    ) -> None:
        """Become another kind of camera (codec, audio), as a reconfigured camera does: its
        RTSP sessions end and clients that reconnect are described the new streams."""
        self._close_clients(camera)
        with camera.lock:
            camera.sinks.clear()  # old pipelines must not be fed the new codec
        factory = self._factory(camera, spec, audio)
        if camera.running:
            self.mounts.remove_factory(camera.path)
            self.mounts.add_factory(camera.path, factory)
        camera.factory, camera.spec = factory, spec
        self._install_loop(camera, loop)
        camera.feed = self.core.Feed(loop=loop.key, loop_len=len(loop.frames), gop=spec.gop_frames)
        self._set_audio(camera, audio, camera.schedule.next_deadline())
