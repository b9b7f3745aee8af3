"""A controller cascading to a SIPp upper platform: world, live feeder, SIPp runner, receivers.

The controller is built as `serve` builds it with `[gb28181]` on; its catalog holds cameras in
武都区 (the upper platform's scope, `areas`) and one in 成县 (outside it), recorded footage
uploaded through the real mutual-TLS ingest, and a live feed made by the agent's own live
muxer (edge_agent.live.mux.TsMuxer) from a recording played at real time, handed to the hub
through the same calls the Live gRPC servicer makes. SIPp (Debian `sip-tester`) is the upper
platform: scenario files in tests/integration/sipp/.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from controller.assembly import Controller, Parts, build_controller
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.directory.rows import Entry
from controller.directory.store import DirectoryStore
from controller.gb28181 import sip
from controller.gb28181.codes import Directory
from controller.gb28181.component import GbComponent
from controller.gb28181.rtp import parse_rtp
from controller.grants.keys import ensure_keys
from controller.live.hub import LiveHub
from edge_agent.live.mux import TsMuxer
from tests.integration.controller_proc import (
    database_url,
    device_channel,
    issue_device,
    prepare_data_dir,
    register,
)
from tests.integration.test_media_support import MadeSegment, make_segments, record, upload_all

SIPP_DIR = Path(__file__).parent / "sipp"
UPPER_ID = "34020000002000000001"
LOCAL_ID = "62120000002000000001"
PASSWORD = "gb-secret-2026"
IN_SCOPE = ["cam-1", "cam-2"]
CAM1_CODE = "62120200001320000001"  # assigned in the resource directory
OUT_OF_SCOPE = "cam-9"
NO_AGENT = "cam-3"


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp is not installed: apt-get install sip-tester (make debs)")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveFeeder:
    """Plays a recording at real time into the hub as an agent's live feed of `camera`."""

    def __init__(self, hub: LiveHub, device: str, recording: Path) -> None:
        self.hub, self.device, self.recording = hub, device, recording
        self._threads: dict[str, threading.Event] = {}
        self.starts = 0
        hub.attach(device, self.command)

    def command(self, camera: str, start: bool) -> None:
        if not start:
            stop = self._threads.pop(camera, None)
            if stop is not None:
                stop.set()
            return
        self.starts += 1
        stop = threading.Event()
        self._threads[camera] = stop
        threading.Thread(target=self._play, args=(camera, stop), daemon=True).start()

    def _play(self, camera: str, stop: threading.Event) -> None:
        while not stop.is_set():
            with av.open(str(self.recording)) as src:
                stream = src.streams.video[0]
                codec = stream.codec_context.name

                muxer = TsMuxer(stream, self._emitter(camera, codec))
                t0, first = time.monotonic(), None
                for packet in src.demux(stream):
                    if stop.is_set() or packet.dts is None:
                        break
                    at = float(packet.dts * stream.time_base)
                    first = at if first is None else first
                    delay = t0 + (at - first) - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    muxer.feed(packet)
                muxer.close()

    def _emitter(self, camera: str, codec: str) -> Callable[[bytes, bool], bool]:
        def emit(data: bytes, key: bool) -> bool:
            self.hub.chunk(self.device, camera, data, key, time.time_ns() // 1000, codec)
            return True

        return emit

    def close(self) -> None:
        for stop in self._threads.values():
            stop.set()


@dataclass
class GbWorld:
    controller: Controller
    gb: GbComponent
    feeder: LiveFeeder
    segments: list[MadeSegment]
    sip_port: int
    upper_port: int
    tmp: Path
    codes: dict[str, str] = field(default_factory=dict)

    def link_state(self) -> str:
        return self.gb.links[0].state


def gb_config(data: Path, sip_port: int, upper_port: int, password_file: Path) -> dict[str, Any]:
    return {
        "enabled": True,
        "listen": f"127.0.0.1:{sip_port}",
        "catalog_page": 2,
        "upper": [
            {
                "server_id": UPPER_ID,
                "server_domain": "3402000000",
                "address": f"127.0.0.1:{upper_port}",
                "local_id": LOCAL_ID,
                "password_file": str(password_file),
                "register_expiry_s": 3600,
                "keepalive_s": 1.0,
                "org": "gongan",
                "areas": ["陇南市/武都区"],
            }
        ],
    }


def describe(data: Path, entries: list[Entry]) -> None:
    """Resource directory facts (name, township, village, GB code), as an import writes them."""
    engine = make_engine(database_url(data))
    try:
        DirectoryStore(engine, SystemClock()).apply(entries)
    finally:
        engine.dispose()


@contextmanager
def gb_world(tmp: Path, password: str = PASSWORD, codec: str = "libx264") -> Iterator[GbWorld]:
    data = tmp / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", IN_SCOPE, county="wudu", site="东关村")
    register(data, "dev9", [OUT_OF_SCOPE], county="chengxian", site="v9")
    register(data, "dev2", [NO_AGENT], county="wudu", site="v2")  # its agent never connects
    describe(data, [Entry("cam-1", "东关村路口1号", "城关镇", "东关村", gb_code=CAM1_CODE)])
    ensure_keys(data)
    dev = issue_device(data, "dev1", tmp / "dev1")
    secret = tmp / "upper.password"
    secret.write_text(password)
    secret.chmod(0o600)
    sip_port, upper_port = free_udp_port(), free_udp_port()
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "grpc": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "off"},
            "gb28181": gb_config(data, sip_port, upper_port, secret),
        }
    )
    controller = build_controller(config, SystemClock(), Parts())
    assert controller.gb28181 is not None and controller.live is not None
    segments = make_segments(tmp / "rec", 6.0, codec, audio=False)
    channel = device_channel(controller.grpc_port, dev)
    feeder = LiveFeeder(controller.live, "dev1", record(tmp / "live.ts", 4.0, codec, False))
    try:
        controller.start()
        upload_all(channel, "cam-1", segments, "gb")
        directory = Directory.of(controller.gb28181.backend.places())
        codes = {c.place.camera_id: c.code for c in directory.coded}
        yield GbWorld(
            controller, controller.gb28181, feeder, segments, sip_port, upper_port, tmp, codes
        )
    finally:
        feeder.close()
        channel.close()
        controller.stop(grace_s=1.0)


@dataclass
class SippRun:
    returncode: int
    messages: str
    output: str
    raw: bytes = b""  # the message log as sent: SIP headers are UTF-8, MANSCDP bodies GB18030


def run_sipp(
    world: GbWorld,
    scenario: str,
    keys: dict[str, str],
    *,
    server: bool = True,
    timeout_s: float = 40.0,
    ooc: str = "upper_ooc.xml",
) -> SippRun:
    """SIPp as the upper platform on `world.upper_port` (server: waits for Vigil's REGISTER)
    or as a client of Vigil's SIP port. Returns its exit code and its message log."""
    log = world.tmp / f"{scenario}.{time.monotonic_ns()}.messages.log"
    cmd = [
        sipp_binary(),
        f"127.0.0.1:{world.sip_port}",
        "-sf", str(SIPP_DIR / scenario),
        "-i", "127.0.0.1",
        "-p", str(world.upper_port),
        "-m", "1",
        "-nostdin",
        "-deadcall_wait", "0",  # Vigil re-registers on one Call-ID: not a dead call
        "-timeout", f"{int(timeout_s)}s",
        "-timeout_error",
        "-trace_msg", "-message_file", str(log),
    ]  # fmt: skip
    if ooc:
        cmd += ["-oocsf", str(SIPP_DIR / ooc)]
    for key, value in keys.items():
        cmd += ["-d", value] if key == "play_ms" else ["-key", key, value]
    proc = subprocess.run(
        cmd, capture_output=True, timeout=timeout_s + 20, check=False, cwd=world.tmp
    )
    raw = log.read_bytes() if log.exists() else b""
    messages = raw.decode("gb18030", errors="replace")
    output = (proc.stdout + proc.stderr).decode(errors="replace")[-4000:]
    return SippRun(proc.returncode, messages, output, raw)


class RtpReceiver:
    """Collects RTP on a UDP port (or TCP, RFC 4571) in a thread; `ps()` is the payload."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[bytes] = []
        self.first_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.first_at:
                self.first_at = time.monotonic()
            self.packets.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def ps(self) -> bytes:
        return b"".join(parse_rtp(p)[4] for p in self.packets)

    def ssrcs(self) -> set[int]:
        return {parse_rtp(p)[3] for p in self.packets}


def ffprobe(path: Path) -> dict[str, Any]:
    """Frames that decode, and the stream's codec and duration, as ffprobe reads them."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=format_name,duration",
            "-of",
            "default=noprint_wrappers=1",
            str(path),
        ],  # fmt: skip
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return fields


class SipClient:
    """The upper platform's requests from Python (for media variants SIPp cannot follow: a
    TCP port learnt from Vigil's answer). The signalling itself is tested with SIPp."""

    def __init__(self, world: GbWorld) -> None:
        self.vigil = ("127.0.0.1", world.sip_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port: int = self.sock.getsockname()[1]

    def request(self, method: str, code: str, call_id: str, cseq: int, **kw: str) -> sip.SipMessage:
        msg = sip.SipMessage(method=method, uri=f"sip:{code}@6212000000")
        msg.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={sip.new_branch()}")
        msg.add("From", f"<sip:{UPPER_ID}@3402000000>;tag=py")
        msg.add("To", kw.get("to", f"<sip:{code}@6212000000>"))
        msg.add("Call-ID", call_id)
        msg.add("CSeq", f"{cseq} {method}")
        if "body" in kw:
            msg.add("Content-Type", "APPLICATION/SDP")
            msg.body = kw["body"].encode()
        self.sock.sendto(msg.to_bytes(), self.vigil)
        if method == "ACK":
            return msg
        while True:
            reply = sip.parse(self.sock.recv(65536))
            if not reply.is_request and reply.status >= 200 and reply.call_id == call_id:
                return reply

    def close(self) -> None:
        self.sock.close()


def tcp_offer(port: int, setup: str, ssrc: str) -> str:
    return (
        f"v=0\r\no={UPPER_ID} 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=video {port} TCP/RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
        f"a=setup:{setup}\r\na=connection:new\r\ny={ssrc}\r\n"
    )


def read_rfc4571(conn: socket.socket, seconds: float) -> list[bytes]:
    """RTP packets from a TCP stream framed by 16-bit lengths, for `seconds`."""
    conn.settimeout(0.5)
    buf, packets, end = b"", [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
        while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            n = int.from_bytes(buf[:2], "big")
            packets.append(buf[2 : 2 + n])
            buf = buf[2 + n :]
    return packets
