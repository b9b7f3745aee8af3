"""The camera emulator's server process: N cameras over RTSP plus a fault-control HTTP API.

Run by Debian's /usr/bin/python3 (the only interpreter where `gi` imports), so it uses the
standard library and gi only. Its pure siblings (`core.py`, `control_api.py`, `gst_loops.py`)
are loaded by file path, not through the `edge_agent` package, whose imports belong to the venv.

Each camera replays a pre-encoded loop (see gst_loops.py) in its profile (profiles.py: H.264
or H.265, with or without B-frames, with or without AAC/G.711 audio). One GLib timer per
camera paces frames on the monotonic clock by absolute deadlines (no drift) and hands each
access unit to every client pipeline (`appsrc ! h264parse ! rtph264pay` and so on, plus an
audio appsrc when the camera has sound) with a timestamp taken from the
schedule, so clients see exactly 1/fps between frames. Faults are applied in the main loop;
the HTTP thread only parses, encodes new loops and waits for the main loop's answer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from vigil_camsim.gst_commands import Commands

INSTALL_HINT = (
    "GStreamer's RTSP server is missing for /usr/bin/python3. Install it with: apt-get install "
    "-y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly"
)
EXIT_MISSING_GST = 2
EXIT_PORT_BUSY = 3
EXIT_BAD_CONFIG = 4
T = TypeVar("T")
BASE_ELEMENTS = (
    "videotestsrc",
    "textoverlay",
    "timeoverlay",
    "x264enc",
    "h264parse",
    "appsrc",
    "appsink",
    "rtph264pay",
)
VIDEO_ELEMENTS = {
    "h265": ("x265enc", "h265parse", "rtph265pay"),
    "mjpeg": ("jpegenc", "jpegparse", "rtpjpegpay"),
}
AUDIO_ELEMENTS = {
    "aac": ("voaacenc", "aacparse", "rtpmp4gpay"),
    "pcma": ("alawenc", "rtppcmapay"),
    "pcmu": ("mulawenc", "rtppcmupay"),
}


def _load_sibling(name: str) -> ModuleType:
    """Import vigil_camsim/<name>.py by path under a private name (see module doc)."""
    qualified = f"vigil_camsim_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # dataclasses look their module up while executing it
    spec.loader.exec_module(module)
    return module


def elements_for(specs: list[Any]) -> tuple[str, ...]:
    """The GStreamer elements these cameras need (so a missing H.265 or AAC encoder is named
    before anything starts, not discovered when a loop fails to encode)."""
    needed = list(BASE_ELEMENTS)
    for spec in specs:
        extra: tuple[str, ...] = VIDEO_ELEMENTS.get(spec.codec, ())
        extra += AUDIO_ELEMENTS.get(spec.audio, ()) if spec.audio else ()
        needed += [e for e in extra if e not in needed]
    return tuple(needed)


def import_gst(elements: tuple[str, ...] = BASE_ELEMENTS) -> tuple[Any, Any, Any]:
    """(Gst, GstRtspServer, GLib), or exit with the apt packages to install."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as exc:
        print(f"vigil-camsim: {exc}\n{INSTALL_HINT}", file=sys.stderr)
        sys.exit(EXIT_MISSING_GST)
    Gst.init(None)
    missing = [name for name in elements if Gst.ElementFactory.find(name) is None]
    if missing:
        print(
            f"vigil-camsim: GStreamer elements missing: {missing}\n{INSTALL_HINT}", file=sys.stderr
        )
        sys.exit(EXIT_MISSING_GST)
    return Gst, GstRtspServer, GLib


class MainLoopCaller:
    """Run a function in the GLib main loop from another thread and wait for its result."""

    def __init__(self, glib: Any) -> None:
        self._glib = glib

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> bool:
            try:
                box["value"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc
            done.set()
            return False

        self._glib.idle_add(run)
        if not done.wait(timeout):
            raise TimeoutError("the main loop did not answer")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]


class ControlHandler(BaseHTTPRequestHandler):
    """JSON over HTTP; every request is parsed by control_api before anything is touched."""

    commands: Commands  # set on the subclass made in main()
    api: Any
    server_version = "vigil-camsim"

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass  # tests poll the API; the request log would drown the server log

    def do_GET(self) -> None:  # stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        error = self.api.check_body_length(self.headers.get("Content-Length"))
        if error is not None:
            self.close_connection = True
            self._send(error.status, error.body())
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        command = self.api.parse_request(method, self.path, body)
        if isinstance(command, self.api.ApiError):
            self._send(command.status, command.body())
            return
        try:
            status, payload = self.commands.execute(command)
        except Exception as exc:  # a bad request never takes the server down
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}", "status": 500}
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def rtsp_port_problem(address: str, port: int) -> str | None:
    """A quick bind test of the RTSP port (the server binds it for real once cameras exist)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            return f"{address}:{port}: {exc}"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="gst_server.py", description="Emulated H.264 RTSP cameras (GStreamer)."
    )
    p.add_argument("--cameras", type=int, default=1)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--control-port", type=int, default=8555)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=4000, help="kbit/s")
    p.add_argument("--gop-seconds", type=float, default=2.0)
    p.add_argument("--loop-seconds", type=float, default=4.0)
    p.add_argument("--label-prefix", default="CAM")
    p.add_argument("--preset", default=None, help="d1, 720p, 1080p or 4mp (overrides the size)")
    p.add_argument("--profile", default="h264", help="every camera's profile (profiles.py)")
    p.add_argument(
        "--camera-profile", action="append", default=[], help="ID=PROFILE for one camera"
    )
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--stamp-wallclock", action="store_true", help="SEI send time in each frame")
    p.add_argument("--check", action="store_true", help="check GStreamer is usable, then exit")
    return p.parse_args(argv)


def build_specs(args: argparse.Namespace, core: Any, profiles: Any) -> tuple[list[Any], Any]:
    """Every camera's spec with its profile, and the spec cameras added at run time get
    (the --profile one). Raises SpecError/ProfileError: nothing has started yet."""
    width, height = args.width, args.height
    if args.preset is not None:
        width, height = profiles.preset_size(args.preset)
    specs = core.make_specs(
        args.cameras,
        width=width,
        height=height,
        fps=args.fps,
        bitrate_kbps=args.bitrate,
        gop_seconds=args.gop_seconds,
        loop_seconds=args.loop_seconds,
        label_prefix=args.label_prefix,
    )
    chosen = profiles.profiles_for([s.camera_id for s in specs], args.profile, args.camera_profile)

    def apply(spec: Any, profile: Any) -> Any:
        return core.with_profile(spec, profile.name, profile.codec, profile.bframes, profile.audio)

    default = profiles.parse_profile(args.profile)
    return [apply(s, chosen[s.camera_id]) for s in specs], apply(specs[0], default)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    core_mod: Any = _load_sibling("core")
    profiles_mod: Any = _load_sibling("profiles")
    try:
        specs, defaults = build_specs(args, core_mod, profiles_mod)
    except (core_mod.SpecError, profiles_mod.ProfileError) as exc:
        print(f"vigil-camsim: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.check:
        import_gst(elements_for(specs))
        print("vigil-camsim: GStreamer RTSP server and plugins are usable")
        return 0
    gst, rtsp, glib = import_gst(elements_for(specs))
    loops_mod: Any = _load_sibling("gst_loops")
    camera_mod: Any = _load_sibling("gst_camera")
    cache_dir = args.cache_dir or loops_mod.default_cache_dir()
    library = loops_mod.LoopLibrary(gst, cache_dir, profiles_mod, core_mod.LOOP_FORMAT_VERSION)
    runtime = camera_mod.Runtime(
        gst=gst,
        rtsp=rtsp,
        glib=glib,
        core=core_mod,
        api=_load_sibling("control_api"),
        library=library,
        profiles=profiles_mod,
        caller=MainLoopCaller(glib),
        address=args.address,
        port=args.port,
        defaults=defaults,
        label_prefix=args.label_prefix,
        stamp_wallclock=args.stamp_wallclock,
    )
    # Claim both ports before encoding: a busy port fails in milliseconds, not after minutes
    # of encoding. Until the cameras are ready, /health answers 503.
    if (problem := rtsp_port_problem(args.address, args.port)) is not None:
        print(f"vigil-camsim: cannot listen for RTSP on {problem}", file=sys.stderr)
        return EXIT_PORT_BUSY
    commands = _load_sibling("gst_commands").Commands(runtime)
    handler = type("Handler", (ControlHandler,), {"commands": commands, "api": runtime.api})
    try:
        httpd = ThreadingHTTPServer((args.address, args.control_port), handler)
    except OSError as exc:
        print(f"vigil-camsim: control port {args.control_port}: {exc}", file=sys.stderr)
        return EXIT_PORT_BUSY
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="control", daemon=True).start()
    started = time.monotonic()
    try:
        ready = [
            (
                spec,
                library.get(spec, core_mod.cache_key(spec)),
                None if spec.audio is None else library.get_audio(profiles_mod.AUDIO[spec.audio]),
            )
            for spec in specs
        ]
    except loops_mod.LoopError as exc:
        print(f"vigil-camsim: {exc}\n{INSTALL_HINT}", file=sys.stderr)
        return EXIT_MISSING_GST
    prepared = time.monotonic() - started
    for spec, loop, audio in ready:
        runtime.add_camera(spec, loop, audio)
    if not runtime.attach():
        where = f"{args.address}:{args.port}"
        print(f"vigil-camsim: cannot listen for RTSP on {where}", file=sys.stderr)
        return EXIT_PORT_BUSY
    runtime.ready = True
    mainloop = glib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        glib.unix_signal_add(glib.PRIORITY_HIGH, signum, lambda *_: mainloop.quit() or False)
    print(
        f"vigil-camsim: {len(specs)} camera(s) ready in {prepared:.2f}s "
        f"({library.encoded} encoded, {library.from_cache} from cache {cache_dir})"
    )
    for camera in runtime.cameras.values():
        spec = camera.spec
        print(f"  {spec.camera_id}: {runtime.url(spec.camera_id)} ({spec.profile})")
    print(f"  control API: http://{args.address}:{args.control_port}/cameras", flush=True)
    try:
        mainloop.run()
    finally:
        httpd.shutdown()
        runtime.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
