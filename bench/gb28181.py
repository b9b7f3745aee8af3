"""GB/T 28181 cascade: N concurrent live streams out as PS over RTP, against a bare PyAV remux.

Set-up: a controller built as `serve` builds it with `[gb28181]` on (SQLite, local store), N
cameras in its catalog, each fed live through the hub exactly as an agent's Feed stream does:
a 640x360 25 fps H.264 clip muxed by the agent's own live muxer (edge_agent.live.mux.TsMuxer)
into per-packet MPEG-TS chunks, replayed at real time (the emulated cameras; encoding is done
once, before the measurement). This process plays the upper platform's signalling: it INVITEs every
camera (UDP, its own SSRC) and ACKs; a forked process (bench/gb_rtp_sink.py) counts the RTP
on N sockets, so the receivers' Python does not contend for this process's GIL.

Measured in rounds (`--rounds`, 6 in --quick): each round takes the cascade thread's CPU over
a `--window` of seconds, then at once PyAV's remux of the same bytes (the clip, once per
stream, three times over: a baseline of the same order of CPU), so both sides of a round see
the same machine (on a shared, loaded VM its state moves within a minute). Each round gives a
ratio; the figure is the median of the rounds' ratios, with their range.

Figures (last stdout line, JSON): `streams`; `cpu_pct_per_stream`, the CPU of the cascade's
thread (SIP loop: TS demux, PS pack, RTP, sendto) per stream, in % of one core (median of the
rounds); `bare_remux_cpu_pct_per_stream`, PyAV remuxing the same TS bytes to PS (FFmpeg's
`mpeg` muxer, batch: no RTP, no sockets; median of the rounds); `ratio`, the median of the
rounds' cascade / bare (goal <= 1.5), `ratio_min`, `ratio_max`, `ratio_rounds`;
`pack_only_cpu_pct_per_stream`, the cascade's pure
pipeline alone over the same bytes (what remains is the per-frame wake-up of the SIP loop and
the sendto calls of real-time delivery, which a batch remux does not have);
`invite_to_first_packet_ms` (median, max: a stream starts at the feed's next keyframe).
Beside the issue's baseline, two more over the same bytes (bench/gb_bare.py, each round):
`bare_continuous_cpu_pct_per_stream` / `ratio_continuous`, the remux in containers opened once;
`bare_paced_cpu_pct_per_stream` / `ratio_paced`, that remux delivered live on the pump's tick.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from bench.gb_bare import (
    BARE_REPEAT,
    bare_round_pct,
    continuous_round_pct,
    continuous_ts,
    paced_round_pct,
)
from bench.gb_rtp_sink import RtpSinks
from controller.assembly import build_controller
from controller.catalog import Catalog
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.gb28181 import sip
from controller.gb28181.codes import Directory
from controller.gb28181.ps import PsPacker
from controller.gb28181.pump import TICK_S
from controller.gb28181.rtp import RtpPacketizer
from controller.gb28181.tsdemux import TsDemuxer
from controller.grants.keys import ensure_keys
from controller.live.hub import LiveHub
from controller.pki import init_pki
from edge_agent.live.mux import TsMuxer

UPPER = "34020000002000000001"
LOCAL = "62120000002000000001"
FPS = 25


def encode_clip(path: Path, seconds: float) -> Path:
    out = av.open(str(path), "w", format="mpegts")
    video = out.add_stream("libx264", rate=FPS)
    assert isinstance(video, VideoStream)
    video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
    video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "50", "bf": "0"}
    for i in range(int(seconds * FPS)):
        frame = VideoFrame(640, 360, "yuv420p")
        for k, plane in enumerate(frame.planes):
            row = bytes((i * 3 + x + k * 40) % 256 for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode(None):
        out.mux(packet)
    out.close()
    return path


def live_chunks(clip: Path) -> list[tuple[float, bytes, bool]]:
    """(seconds from start, TS chunk, keyframe) as the agent's live muxer makes them."""
    chunks: list[tuple[float, bytes, bool]] = []
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        times: list[float] = []

        def emit(data: bytes, key: bool) -> bool:
            chunks.append((times[-1], data, key))
            return True

        muxer = TsMuxer(stream, emit)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            times.append(float(packet.dts * (stream.time_base or Fraction(1, 90_000))))
            muxer.feed(packet)
        muxer.close()
    return chunks


class Feeder:
    """Replays the chunks at real time for every camera asked (one thread for all)."""

    def __init__(self, hub: LiveHub, chunks: list[tuple[float, bytes, bool]]) -> None:
        self.hub, self.chunks = hub, chunks
        self.cameras: set[str] = set()
        self._stop = threading.Event()
        hub.attach("dev1", self.command)
        threading.Thread(target=self._run, daemon=True).start()

    def command(self, camera: str, start: bool) -> None:
        (self.cameras.add if start else self.cameras.discard)(camera)

    def _run(self) -> None:
        span = self.chunks[-1][0] + 1 / FPS
        t0, loop = time.monotonic(), 0
        while not self._stop.is_set():
            for at, data, key in self.chunks:
                delay = t0 + loop * span + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                for camera in list(self.cameras):
                    self.hub.chunk("dev1", camera, data, key, time.time_ns() // 1000, "h264")
            loop += 1

    def stop(self) -> None:
        self._stop.set()


def thread_cpu_s(clock_id: int) -> float:
    """CPU seconds of a thread, to the nanosecond (its POSIX CPU-time clock; /proc's
    utime+stime count 10 ms ticks, which over a 3 s window of ~40 ms is the whole noise)."""
    return time.clock_gettime(clock_id)


class Upper:
    """The upper platform: answers Vigil's REGISTER/MESSAGE 200, INVITEs, counts RTP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.finals: dict[str, sip.SipMessage] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                msg = sip.parse(data)
            except sip.SipError:
                continue
            if msg.is_request:
                self.sock.sendto(sip.response(msg, 200, to_tag="u").to_bytes(), peer)
            elif msg.status >= 200:
                self.finals[msg.call_id] = msg

    def invite(self, vigil: tuple[str, int], code: str, rtp_port: int, n: int) -> str:
        call_id = f"bench-{n}"
        offer = (
            f"v=0\r\no={UPPER} 0 0 IN IP4 127.0.0.1\r\ns=Play\r\nc=IN IP4 127.0.0.1\r\n"
            f"t=0 0\r\nm=video {rtp_port} RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
            f"y={n:010d}\r\n"
        ).encode()
        msg = sip.SipMessage(method="INVITE", uri=f"sip:{code}@6212000000")
        msg.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={sip.new_branch()}")
        msg.add("From", f"<sip:{UPPER}@3402000000>;tag=b{n}")
        msg.add("To", f"<sip:{code}@6212000000>")
        msg.add("Call-ID", call_id)
        msg.add("CSeq", "1 INVITE")
        msg.add("Content-Type", "APPLICATION/SDP")
        msg.body = offer
        self.sock.sendto(msg.to_bytes(), vigil)
        return call_id

    def ack(self, vigil: tuple[str, int], call_id: str, code: str) -> None:
        ok = self.finals[call_id]
        msg = sip.SipMessage(method="ACK", uri=f"sip:{code}@6212000000")
        msg.add("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={sip.new_branch()}")
        msg.add("From", ok.get("From"))
        msg.add("To", ok.get("To"))
        msg.add("Call-ID", call_id)
        msg.add("CSeq", "1 ACK")
        self.sock.sendto(msg.to_bytes(), vigil)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


def pack_only_cpu_s(chunks: list[tuple[float, bytes, bool]]) -> float:
    """CPU seconds of the cascade's pure pipeline alone (TS demux, PS pack, RTP cut) over
    the same chunks: what the loop wake-ups and sendto calls add is the rest."""
    start = time.thread_time()
    demux, packer, rtp = TsDemuxer(), PsPacker(), RtpPacketizer(1)
    for _, chunk, _ in chunks:
        for au in demux.feed(chunk, True):
            ps = packer.pack(au)
            if ps is not None:
                rtp.packets_of(ps, au.pts or 0)
    return time.thread_time() - start


def run(streams: int, rounds: int, window: float, work: Path) -> dict[str, Any]:
    sinks = RtpSinks(streams)  # forked first, while this process has one thread
    data = work / "ctl"
    init_pki(data, [], datetime.now(UTC))
    engine = make_engine(f"sqlite:///{data / 'catalog.db'}")
    catalog = Catalog(engine, SystemClock())
    catalog.upsert_device("dev1", "wudu", "v001", "nvr")
    cameras = [f"cam-{i:03d}" for i in range(streams)]
    for camera in cameras:
        catalog.upsert_camera(camera, "dev1")
    engine.dispose()
    ensure_keys(data)
    secret = work / "pw"
    secret.write_text("bench")
    secret.chmod(0o600)
    upper = Upper()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "grpc": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "off"},
            "gb28181": {
                "enabled": True,
                "listen": f"127.0.0.1:{sip_port}",
                "max_streams": max(streams, 1),
                "upper": [
                    {
                        "server_id": UPPER,
                        "address": f"127.0.0.1:{upper.port}",
                        "local_id": LOCAL,
                        "password_file": str(secret),
                        "org": "city",
                        "keepalive_s": 60,
                    }
                ],
            },
        }
    )
    chunks = live_chunks(encode_clip(work / "clip.ts", 4.0))
    controller = build_controller(config, SystemClock())
    gb, hub = controller.gb28181, controller.live
    assert gb is not None and hub is not None
    feeder = Feeder(hub, chunks)
    controller.start()
    try:
        codes = Directory.of(gb.backend.places())
        vigil = ("127.0.0.1", sip_port)
        invited: list[tuple[str, float]] = []
        for n, camera in enumerate(cameras):
            call_id = upper.invite(vigil, codes.code_of(camera), sinks.ports[n], n + 1)
            invited.append((call_id, time.monotonic()))
        deadline = time.monotonic() + 15
        while len(upper.finals) < streams and time.monotonic() < deadline:
            time.sleep(0.01)
        for n, camera in enumerate(cameras):
            upper.ack(vigil, invited[n][0], codes.code_of(camera))
        while not all(sinks.stats()[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # every stream past its first GOP
        ident = next(t.ident for t in threading.enumerate() if t.name == "gb28181")
        assert ident is not None
        tid = time.pthread_getcpuclockid(ident)
        span = chunks[-1][0] + 1 / FPS
        ts = b"".join(c for _, c, _ in chunks)
        long_ts = continuous_ts(ts, BARE_REPEAT + 1)
        cascade, bare, sent, wall = [], [], 0, 0.0
        continuous, paced = [], []
        for _ in range(rounds):
            cpu0, wall0 = thread_cpu_s(tid), time.monotonic()
            bytes0 = sum(sinks.stats()[1])
            time.sleep(window)
            cpu = thread_cpu_s(tid) - cpu0
            took = time.monotonic() - wall0
            sent, wall = sent + sum(sinks.stats()[1]) - bytes0, wall + took
            cascade.append(cpu / took * 100 / streams)
            bare.append(bare_round_pct(ts, span, streams))  # now, on the same machine state
            continuous.append(continuous_round_pct(long_ts, BARE_REPEAT * span, streams))
            paced.append(paced_round_pct(long_ts, window, streams, TICK_S))
        first_at, _counts = sinks.stats()
    finally:
        feeder.stop()
        controller.stop(grace_s=1.0)
        upper.stop()
        sinks.stop()
    loops = max(1, round(wall / span))
    pack = sum(pack_only_cpu_s(chunks) for _ in range(loops))
    firsts = [(f - at) * 1000 for f, (_, at) in zip(first_at, invited, strict=True) if f]
    ratios = sorted(c / b for c, b in zip(cascade, bare, strict=True) if b)

    def median_ratio(base: list[float]) -> float | None:
        rs = [c / b for c, b in zip(cascade, base, strict=True) if b]
        return round(statistics.median(rs), 2) if rs else None

    return {
        "streams": streams,
        "streams_started": len(firsts),
        "rounds": rounds,
        "seconds": round(wall, 2),
        "mbit_s_out": round(sent * 8 / wall / 1e6, 2),
        "cpu_pct_per_stream": round(statistics.median(cascade), 3),
        "bare_remux_cpu_pct_per_stream": round(statistics.median(bare), 3),
        "ratio": round(statistics.median(ratios), 2) if ratios else None,
        "ratio_min": round(ratios[0], 2) if ratios else None,
        "ratio_max": round(ratios[-1], 2) if ratios else None,
        "ratio_rounds": [round(r, 2) for r in ratios],
        "bare_continuous_cpu_pct_per_stream": round(statistics.median(continuous), 3),
        "ratio_continuous": median_ratio(continuous),
        "bare_paced_cpu_pct_per_stream": round(statistics.median(paced), 3),
        "ratio_paced": median_ratio(paced),
        "pack_only_cpu_pct_per_stream": round(pack / (loops * span) * 100, 3),
        "invite_to_first_packet_ms": round(statistics.median(firsts), 1) if firsts else None,
        "invite_to_first_packet_ms_max": round(max(firsts), 1) if firsts else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 streams, 6 rounds of 3 s")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--window", type=float, default=3.0, help="seconds per round")
    args = parser.parse_args(argv)
    streams, rounds = (8, 6) if args.quick else (args.streams, args.rounds)
    with tempfile.TemporaryDirectory(prefix="bench-gb28181-") as tmp:
        result = run(streams, max(rounds, 1), args.window, Path(tmp))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
