"""GB/T 28181 device tests' shared parts: a controller taking devices in, and device media.

`device_controller` starts a controller (as `serve` builds it) with `[gb28181]` device access
on a free UDP port, the NVR's password issued and, when given, its channels in the catalog.
`make_ps` encodes `frames` H.264 frames at 25 fps (a keyframe every 25) into MPEG-PS with
GStreamer's `mpegpsmux`; `send_ps` sends that file to a port Vigil offered, cut into RTP
packets by `rtpmp2tpay` (PS bytes cut anywhere, as GB devices send them) with Vigil's SSRC.
GStreamer is an independent implementation: what Vigil takes in was not made by Vigil.
`sipp_device` runs SIPp as a registered NVR answering Vigil's requests; `PacedPs` sends a PS
file at its own frame rate (a live camera) for as long as a browser watches.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.assembly import Controller, Parts, build_controller
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import Channel
from controller.gb28181.ps import G711A, PsPacker
from controller.grants.keys import ensure_keys
from tests.integration.controller_proc import database_url, prepare_data_dir
from tests.integration.test_gb28181_support import SIPP_DIR, free_udp_port, sipp_binary
from tests.unit.test_gb28181_audio import interleaved

PAYLOAD = 1316  # rtpmp2tpay sends whole payloads of 7 x 188 bytes
REALM = "6212000000"


def device_controller(
    data: Path,
    server_id: str,
    nvr: str,
    channels: Sequence[Channel] = (),
    top: dict[str, Any] | None = None,
    **gb: Any,
) -> tuple[Controller, str, int]:
    """The started controller, the NVR's password and the SIP port; `gb`: more `[gb28181]`
    settings, `top`: more top-level ones (`http` on: the HTTP API runs too)."""
    prepare_data_dir(data)
    ensure_keys(data)
    engine = make_engine(database_url(data))
    try:
        store = GbDeviceStore(engine, SystemClock())
        password = store.issue(nvr, "wudu", "东关村", REALM)
        if channels:
            store.set_channels(nvr, channels)
    finally:
        engine.dispose()
    sip_port = free_udp_port()
    listen = f"127.0.0.1:{sip_port}"
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "grpc": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "off"},
            "gb28181": {"enabled": True, "listen": listen, "server_id": server_id, **gb},
            **(top or {}),
        }
    )
    parts = Parts(http="http" in (top or {}))
    controller = build_controller(config, SystemClock(), parts)
    assert controller.gb28181 is not None
    controller.start()
    return controller, password, sip_port


def make_ps(path: Path, frames: int = 50) -> Path:
    subprocess.run(
        ["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={frames}", "!",
         "video/x-raw,width=320,height=240,framerate=25/1", "!", "x264enc", "key-int-max=25",
         "bframes=0", "tune=zerolatency", "!", "h264parse", "!", "mpegpsmux", "!",
         "filesink", f"location={path}"],
        check=True, timeout=60,
    )  # fmt: skip
    # pad the stream (a PS padding packet) to a whole number of payloads
    tail = PAYLOAD - path.stat().st_size % PAYLOAD
    tail += PAYLOAD if tail < 6 else 0
    with path.open("ab") as f:
        f.write(b"\x00\x00\x01\xbe" + (tail - 6).to_bytes(2, "big") + b"\xff" * (tail - 6))
    return path


def send_ps(path: Path, port: int, ssrc: int, tcp: bool = False) -> None:
    """Over UDP, or with `tcp` as the active side of RTP over TCP (RFC 4571 framing by
    GStreamer's `rtpstreampay`)."""
    sink = (
        ["rtpstreampay", "!", "tcpclientsink", "host=127.0.0.1", f"port={port}"]
        if tcp
        else ["udpsink", "host=127.0.0.1", f"port={port}"]
    )
    subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={path}", f"blocksize={PAYLOAD}", "!",
         "video/mpegts,systemstream=true,packetsize=188", "!", "rtpmp2tpay", "pt=96",
         f"ssrc={ssrc}", "!", *sink],
        check=True, timeout=30,
    )  # fmt: skip


def ffprobe_frames(path: Path) -> str:
    """ffprobe's codec name and decoded frame count of a file (`key=value` lines)."""
    return subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,nb_read_frames", "-of", "default=noprint_wrappers=1", str(path)],
        capture_output=True, check=True, timeout=30,
    ).stdout.decode()  # fmt: skip


def sipp_device(
    sip_port: int, cwd: Path, ooc: str, log: Path, nvr: str, password: str, server_id: str,
    port: int = 0, keys: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """SIPp as the NVR: registered for 60 s, keepalives, answering Vigil's requests with the
    out-of-call scenario `ooc` (tests/integration/sipp/), with more scenario `keys`."""
    more = [arg for k, v in (keys or {}).items() for arg in ("-key", k, v)]
    return subprocess.Popen(
        [sipp_binary(), f"127.0.0.1:{sip_port}", "-sf", str(SIPP_DIR / "device_register.xml"),
         "-oocsf", str(SIPP_DIR / ooc), "-i", "127.0.0.1", "-p", str(port or free_udp_port()),
         "-m", "1", "-nostdin", "-au", nvr, "-ap", password, "-key", "device", nvr,
         "-key", "server_id", server_id, "-key", "realm", REALM, "-d", "60000",
         "-timeout", "90s", "-trace_msg", "-message_file", str(log), *more],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip


class PacedPs(threading.Thread):
    """A PS file (`make_ps`: 25 fps; else `duration_s` long) sent as RTP to Vigil's port and
    SSRC at its own pace: its bytes spread evenly over its duration, as a live camera would
    (keyframes a little late). Stops at the end of the file or at `stop()`."""

    def __init__(self, path: Path, port: int, ssrc: int, duration_s: float = 0.0) -> None:
        super().__init__(name="paced-ps", daemon=True)
        self.data = path.read_bytes()
        self.port, self.ssrc = port, ssrc
        self.duration_s = duration_s or _frames_of(path) / 25.0
        self._stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        chunks = [self.data[i : i + PAYLOAD] for i in range(0, len(self.data), PAYLOAD)]
        gap = self.duration_s / len(chunks)
        start = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for seq, chunk in enumerate(chunks):
                if self._stop_event.is_set():
                    return
                at = start + seq * gap
                ts = int((at - start) * 90_000) & 0xFFFFFFFF
                header = bytes([0x80, 96]) + (seq & 0xFFFF).to_bytes(2, "big")
                header += ts.to_bytes(4, "big") + self.ssrc.to_bytes(4, "big")
                sock.sendto(header + chunk, ("127.0.0.1", self.port))
                self.sent += 1
                self._stop_event.wait(max(0.0, at + gap - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


def _frames_of(path: Path) -> int:
    out = ffprobe_frames(path)
    return int(next(line for line in out.splitlines() if "nb_read_frames" in line).split("=")[1])


def framed_rtp(path: Path, out: Path, ssrc: int) -> bytes:
    """The PS file as RTP with RFC 4571 framing (GStreamer's `rtpstreampay`), the bytes a
    device that listens for TCP media sends on the connection Vigil opens."""
    subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={path}", f"blocksize={PAYLOAD}", "!",
         "video/mpegts,systemstream=true,packetsize=188", "!", "rtpmp2tpay", "pt=96",
         f"ssrc={ssrc}", "!", "rtpstreampay", "!", "filesink", f"location={out}"],
        check=True, timeout=30,
    )  # fmt: skip
    return out.read_bytes()


def make_ps_with_audio(path: Path, seconds: float) -> Path:
    """H.264 (libx264) and G.711 A-law (FFmpeg's encoder) as a GB device sends them in PS
    (PSM stream types 0x1B and 0x90). Packed by Vigil's own PS packer: neither FFmpeg's nor
    GStreamer's PS muxer takes G.711."""
    packer = PsPacker()
    path.write_bytes(b"".join(p for u in interleaved(seconds) if (p := packer.pack(u, G711A))))
    return path
