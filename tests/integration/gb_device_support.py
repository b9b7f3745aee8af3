"""GB/T 28181 device tests' shared parts: a controller taking devices in, and device media.

`device_controller` starts a controller (as `serve` builds it) with `[gb28181]` device access
on a free UDP port, the NVR's password issued and, when given, its channels in the catalog.
`make_ps` encodes `frames` H.264 frames at 25 fps (a keyframe every 25) into MPEG-PS with
GStreamer's `mpegpsmux`; `send_ps` sends that file to a port Vigil offered, cut into RTP
packets by `rtpmp2tpay` (PS bytes cut anywhere, as GB devices send them) with Vigil's SSRC.
GStreamer is an independent implementation: what Vigil takes in was not made by Vigil.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.assembly import Controller, Parts, build_controller
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import Channel
from controller.grants.keys import ensure_keys
from tests.integration.controller_proc import database_url, prepare_data_dir
from tests.integration.test_gb28181_support import free_udp_port

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
