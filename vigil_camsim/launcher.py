"""Start the camera emulator's GStreamer process from the venv and wait until it serves.

    with CamsimProcess.start(cameras=8, width=1920, height=1080) as cams:
        urls = cams.urls            # rtsp://127.0.0.1:<port>/cam/1 ...
        cams.client.stall("3")      # fault control
    # stopped by PID on exit

    CamsimProcess.start(cameras=3, preset="d1", profile="h265",     # every camera H.265 D1,
                        profiles={3: "h264-bframes-pcma"})          # but camera 3 like this

The server must run under Debian's /usr/bin/python3 (the only interpreter with `gi`), so this
module only builds its command line, starts it in its own process group, polls both ports and
stops it by PID. Free ports are chosen here; if another process grabs one first, the start is
retried on new ports.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from edge_agent.clock import Clock, SystemClock
from vigil_camsim import profiles as camera_profiles
from vigil_camsim.client import CameraId, CamsimClient

GST_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_server.py")
EXIT_MISSING_GST = 2
EXIT_PORT_BUSY = 3
INSTALL_HINT = (
    "apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad "
    "gstreamer1.0-plugins-ugly"
)


class CamsimError(RuntimeError):
    """The emulator could not be started (missing GStreamer, bad settings, no ports)."""


PerCamera = Mapping[CameraId, str] | Sequence[str | None] | None


def camera_profile_args(profiles: PerCamera) -> tuple[str, ...]:
    """Per-camera profiles as `ID=NAME` items: a mapping {2: "h265"}, or a list whose i-th
    name is camera i+1's (None in a list keeps that camera on the common profile)."""
    if profiles is None:
        return ()
    if isinstance(profiles, str):
        raise CamsimError("profiles must be a mapping or a list, e.g. {2: 'h265'}")
    if isinstance(profiles, Mapping):
        return tuple(f"{cid}={name}" for cid, name in profiles.items())
    return tuple(f"{i}={name}" for i, name in enumerate(profiles, start=1) if name is not None)


@dataclass(frozen=True)
class CamsimOptions:
    """Settings of one emulator process (defaults: 1080p25 4 Mbit/s, keyframe every 2 s)."""

    cameras: int = 1
    width: int = 1920
    height: int = 1080
    fps: int = 25
    bitrate_kbps: int = 4000
    gop_seconds: float = 2.0
    loop_seconds: float = 4.0
    label_prefix: str = "CAM"
    address: str = "127.0.0.1"
    cache_dir: Path | None = None
    preset: str | None = None  # d1 | 720p | 1080p | 4mp: overrides width/height
    profile: str = camera_profiles.DEFAULT_PROFILE  # every camera's, e.g. "h265-pcma"
    camera_profiles: tuple[str, ...] = ()  # "ID=NAME" items that override `profile`
    stamp_wallclock: bool = False  # each frame's send time as SEI user data (latency tests)

    def checked(self) -> CamsimOptions:
        """Self, or CamsimError naming the bad preset/profile (before any process starts)."""
        try:
            if self.preset is not None:
                camera_profiles.preset_size(self.preset)
            camera_profiles.profiles_for(
                [str(i) for i in range(1, self.cameras + 1)], self.profile, self.camera_profiles
            )
        except camera_profiles.ProfileError as exc:
            raise CamsimError(str(exc)) from exc
        return self

    def argv(self, python: str, port: int, control_port: int) -> list[str]:
        args = [
            python,
            str(SERVER_SCRIPT),
            f"--cameras={self.cameras}",
            f"--address={self.address}",
            f"--port={port}",
            f"--control-port={control_port}",
            f"--width={self.width}",
            f"--height={self.height}",
            f"--fps={self.fps}",
            f"--bitrate={self.bitrate_kbps}",
            f"--gop-seconds={self.gop_seconds}",
            f"--loop-seconds={self.loop_seconds}",
            f"--label-prefix={self.label_prefix}",
        ]
        if self.cache_dir is not None:
            args.append(f"--cache-dir={self.cache_dir}")
        if self.preset is not None:
            args.append(f"--preset={self.preset}")
        if self.profile != camera_profiles.DEFAULT_PROFILE:
            args.append(f"--profile={self.profile}")
        args += [f"--camera-profile={item}" for item in self.camera_profiles]
        if self.stamp_wallclock:
            args.append("--stamp-wallclock")
        return args


def check_gstreamer(python: str = GST_PYTHON) -> str | None:
    """None when `python` can run the server; else a message that names the packages."""
    if not os.access(python, os.X_OK):
        return f"{python} not found: the emulator needs Debian's python3 with gi. {INSTALL_HINT}"
    result = subprocess.run(
        [python, str(SERVER_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return (result.stderr.strip() or result.stdout.strip()) + f"\n{INSTALL_HINT}"
    return None


def _ephemeral_low(default: int = 32768) -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def free_ports(address: str, count: int) -> list[int]:
    """`count` distinct ports nothing listens on now.

    Picked at random BELOW the kernel's ephemeral range: ports from there are also handed to
    every outgoing connection, so a busy machine (a test with thousands of MQTT clients, say)
    can exhaust them or take one between our pick and the server's bind. The sockets stay
    open until all are picked; closed one at a time, bind(0) tends to return the same port.
    """
    low = max(1025, min(_ephemeral_low(), 65536) - 12000)
    span = max(1, _ephemeral_low() - low)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count * 50):
            if len(sockets) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((address, low + secrets.randbelow(span)))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        while len(sockets) < count:  # crowded: let the kernel choose
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind((address, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


class CamsimProcess:
    """A running emulator process; use `CamsimProcess.start(...)`."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        options: CamsimOptions,
        port: int,
        control_port: int,
        log_path: Path,
        log_file: IO[bytes],
        own_log: bool,
    ) -> None:
        self.proc = proc
        self.options = options
        self.port = port
        self.control_port = control_port
        self.log_path = log_path
        self._log_file = log_file
        self._own_log = own_log
        self.client = CamsimClient(f"http://{options.address}:{control_port}")

    @classmethod
    def start(
        cls,
        cameras: int = 1,
        *,
        width: int = 1920,
        height: int = 1080,
        fps: int = 25,
        bitrate_kbps: int = 4000,
        gop_seconds: float = 2.0,
        loop_seconds: float = 4.0,
        label_prefix: str = "CAM",
        preset: str | None = None,
        profile: str = camera_profiles.DEFAULT_PROFILE,
        profiles: PerCamera = None,
        port: int | None = None,
        control_port: int | None = None,
        cache_dir: Path | None = None,
        log_path: Path | None = None,
        ready_timeout: float = 180.0,
        python: str = GST_PYTHON,
        clock: Clock | None = None,
        stamp_wallclock: bool = False,
        address: str = "127.0.0.1",
    ) -> CamsimProcess:
        """Start the server and return once RTSP and control ports answer.

        The first start with new settings encodes each camera's loop (about 1.5 s per 1080p
        camera here); later starts read the loops from the cache in well under a second.
        `profile` applies to every camera, `profiles` overrides it per camera (see
        profiles.py for the names); `preset` names a size; `stamp_wallclock` puts each
        frame's send time into it as SEI (core.with_wallclock); `address` is where it listens
        (RTSP and control). A bad name raises CamsimError before anything starts.
        """
        options = CamsimOptions(
            cameras=cameras,
            width=width,
            height=height,
            fps=fps,
            bitrate_kbps=bitrate_kbps,
            gop_seconds=gop_seconds,
            loop_seconds=loop_seconds,
            label_prefix=label_prefix,
            cache_dir=cache_dir,
            preset=preset,
            profile=profile,
            camera_profiles=camera_profile_args(profiles),
            stamp_wallclock=stamp_wallclock,
            address=address,
        ).checked()
        if not os.access(python, os.X_OK):
            raise CamsimError(f"{python} not found: {INSTALL_HINT}")
        clock = clock or SystemClock()
        attempts = 1 if port is not None and control_port is not None else 3
        for attempt in range(attempts):
            try:
                spare = free_ports(options.address, 2)
            except OSError as exc:
                raise CamsimError(f"no free TCP port on {options.address}: {exc}") from exc
            rtsp_port = port or next(p for p in spare if p != control_port)
            ctl_port = control_port or next(p for p in spare if p != rtsp_port)
            process = cls._spawn(options, python, rtsp_port, ctl_port, log_path)
            try:
                process._wait_ready(ready_timeout, clock)
                return process
            except CamsimError:
                code = process.proc.poll()
                process.stop()
                if process._own_log:
                    process.log_path.unlink(missing_ok=True)
                if code != EXIT_PORT_BUSY or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _spawn(
        cls,
        options: CamsimOptions,
        python: str,
        port: int,
        control_port: int,
        log_path: Path | None,
    ) -> CamsimProcess:
        own_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="vigil-camsim-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        log_file = open(log_path, "ab")  # closed in stop()
        proc = subprocess.Popen(
            options.argv(python, port, control_port),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(proc, options, port, control_port, log_path, log_file, own_log)

    def _wait_ready(self, timeout: float, clock: Clock) -> None:
        deadline = clock.monotonic() + timeout
        while clock.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                hint = f"\n{INSTALL_HINT}" if code == EXIT_MISSING_GST else ""
                raise CamsimError(f"camsim server exited with {code}:\n{self.log_text()}{hint}")
            if _port_open(self.options.address, self.port) and self.client.health():
                return
            time.sleep(0.05)
        raise CamsimError(f"camsim server not ready after {timeout}s:\n{self.log_text()}")

    # --- what callers use ------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def camera_ids(self) -> list[str]:
        return [c.id for c in self.client.cameras()]

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(1, self.options.cameras + 1)]

    def url(self, camera_id: CameraId) -> str:
        return f"rtsp://{self.options.address}:{self.port}/cam/{camera_id}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group by PID, SIGKILL it if it lingers; idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        if not self._log_file.closed:
            self._log_file.close()
            if self._own_log and self.proc.returncode in (0, -signal.SIGTERM):
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> CamsimProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
