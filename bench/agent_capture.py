"""Benchmark: what the agent costs per camera, against bare PyAV remux of the same streams.

Emulated 1080p 4 Mbit/s cameras (camsim) feed two processes at the same time:

- `agent`: the real `vigil-agent run` (RTSP source, segmenter, 10 s MPEG-TS segments
  committed to the durable buffer: hash, fsync, rename, SQLite index, status file);
- `bare`: a process doing nothing but PyAV remux of the same streams, one thread per camera,
  each into one MPEG-TS file (the floor any remuxing agent pays). It opens the cameras as the
  agent does: FFmpeg's socket timeout bounds a stall, PyAV's timer only the open. (Until
  2026-12-04 it used PyAV's read timer, whose interrupt callback takes the GIL on every I/O
  check: 12-14 % more CPU for the same remux, measured side by side, which flattered the
  agent's ratio; the agent itself stopped using that timer for that reason.)

The agent reads a camera in bursts once it has caught up (`edge_agent.capture.pacing`); the
bare reads packet by packet, as a plain PyAV recorder does. `--burst-bare` adds a second bare
that reads in bursts by the agent's rule, in the same window, so the ratio can be read for
what it is (the agent's own work over a remux, without the wake-ups it saves).

All start together (the emulator sets clients up in parallel) and are measured with psutil
over the same window (CPU time of the whole process, RSS sampled each half second) once every
camera streams into each. This runs twice: H.264 cameras,
then H.265 cameras (same size and bitrate). The G.711 -> AAC conversion the agent does for
cameras with PCMA audio is measured on its own, through the agent's own converter
(`edge_agent.capture.audio.AudioTrack`), on G.711 A-law packets made here, as CPU time per
second of audio.

The last printed line is one JSON object with `cameras`, `agent_cpu_pct_per_camera` (percent of
one core), `agent_rss_mb`, `bare_cpu_pct_per_camera` and `ratio` (H.264), the same for H.265
(`h265_agent_cpu_pct_per_camera`, `h265_bare_cpu_pct_per_camera`, `h265_ratio`) and
`audio_cpu_pct_per_camera` (and with `--burst-bare`: `burst_bare_cpu_pct_per_camera`,
`burst_ratio`, `h265_burst_*`). Goals: ≤ 1.5 % of a core per camera, ≤ 150 MB for 8, ratio ≤
1.3 (against the packet-by-packet bare).

    python -m bench.agent_capture --quick        # 8 cameras, 2 x 18 s windows, < 60 s in all
"""

from __future__ import annotations

import argparse
import array
import json
import math
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import av
import av.error
import psutil
from av.packet import Packet
from av.stream import Stream

from edge_agent.capture.audio import AudioTrack
from edge_agent.capture.pacing import pause_after
from edge_agent.config import READ_PAUSE_S
from vigil_camsim.launcher import CamsimProcess

# The agent's own RTSP options (edge_agent/sources/rtsp.py): `timeout` is FFmpeg's socket
# timeout in µs (the agent's default read timeout, 5 s).
RTSP_OPTIONS = {
    "rtsp_transport": "tcp",
    "analyzeduration": "0",
    "probesize": "32768",
    "timeout": "5000000",
}
GOAL_CPU_PCT = 1.5
GOAL_RSS_MB_FOR_8 = 150
GOAL_RATIO = 1.3
AUDIO_SECONDS = 120  # of G.711 put through the agent's converter


# --- the bare baseline (runs in its own process: `--bare URL...`) ---------------------------


def _bare_camera(url: str, out_path: Path, stop: threading.Event, pause_s: float = 0.0) -> None:
    """Remux one camera into one MPEG-TS file until `stop`; reconnect if the stream ends.
    `pause_s` > 0: read in bursts by the agent's rule (`edge_agent.capture.pacing`)."""
    while not stop.is_set():
        try:
            source = av.open(url, options=RTSP_OPTIONS, timeout=(30, None))
        except (av.error.FFmpegError, OSError):
            stop.wait(0.5)
            continue
        stream = source.streams.video[0]
        with av.open(str(out_path), "w", format="mpegts") as out:
            out_stream = out.add_stream_from_template(stream)
            announced = False
            previous: int | None = None
            try:
                for packet in source.demux(stream):
                    if packet.size == 0 or packet.dts is None:
                        continue
                    if not announced:
                        print(f"connected {url}", flush=True)
                        announced = True
                    packet.stream = out_stream
                    try:
                        out.mux(packet)
                    except (av.error.FFmpegError, ValueError):
                        pass  # a timestamp the muxer refuses: skip it, as bare as can be
                    if pause_s:
                        now = time.time_ns() // 1000
                        if pause_after(previous, now, pause_s, watched=False, udp=False):
                            stop.wait(pause_s)
                            now = time.time_ns() // 1000
                        previous = now
                    if stop.is_set():
                        break
            except (av.error.FFmpegError, OSError):
                pass
        source.close()


def run_bare(urls: list[str], out_dir: Path, pause_s: float = 0.0) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = [
        threading.Thread(
            target=_bare_camera, args=(u, out_dir / f"cam{n}.ts", stop, pause_s), daemon=True
        )
        for n, u in enumerate(urls)
    ]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(10)
    return 0


# --- G.711 -> AAC, through the agent's converter ------------------------------------------


def _g711_file(path: Path, seconds: int) -> None:
    """`seconds` of 8 kHz mono A-law (a tone with some noise), in 20 ms packets as cameras send."""
    rate, frame = 8000, 160
    with av.open(str(path), "w", format="nut") as out:
        stream = out.add_stream("pcm_alaw", rate=rate, layout="mono")
        rng = random.Random(9)
        pcm = array.array(
            "h",
            (
                int(32767 * (0.3 * math.sin(2 * math.pi * 440 * n / rate) + rng.gauss(0, 0.05)))
                for n in range(rate * seconds)
            ),
        )
        for n in range(0, len(pcm), frame):
            f = av.AudioFrame(format="s16", layout="mono", samples=frame)
            f.planes[0].update(pcm[n : n + frame].tobytes())
            f.sample_rate, f.pts = rate, n
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def audio_conversion_pct(seconds: int = AUDIO_SECONDS) -> float:
    """Percent of one core the agent's G.711 -> AAC conversion costs per camera (CPU time of
    converting `seconds` of audio, divided by those seconds)."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-audio-") as tmp_name:
        path = Path(tmp_name) / "g711.nut"
        _g711_file(path, seconds)
        with av.open(str(path)) as source:
            stream = source.streams.audio[0]
            track = AudioTrack(stream, "ts")
            if track.plan != "aac":
                raise RuntimeError(f"G.711 is not converted by the agent (plan {track.plan})")
            out_packets = 0
            packet: Packet[Stream]
            for packet in source.demux():
                if packet.size:
                    out_packets += len(track.convert(packet))
            out_packets += len(track.flush())
        if out_packets < seconds * 8000 // 1024 * 0.9:
            raise RuntimeError(f"the converter gave {out_packets} AAC packets for {seconds} s")
        return 100 * track.cpu_s / seconds


# --- the run ----------------------------------------------------------------------------------


class Measured:
    """CPU time and peak RSS of one process over a window."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.cpu0 = 0.0
        self.cpu1 = 0.0
        self.rss_peak = 0

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def sample(self) -> None:
        self.rss_peak = max(self.rss_peak, self.proc.memory_info().rss)


def _agent_config(path: Path, data: Path, urls: list[str]) -> None:
    cams = "".join(
        f'[[cameras]]\nid = "cam{n}"\nurl = "{u}"\nsegment_seconds = 10\n'
        for n, u in enumerate(urls, start=1)
    )
    path.write_text(
        f'device_id = "bench"\ndata_dir = "{data}"\nlog_level = "INFO"\n'
        f"[buffer]\nquota_bytes = {20 * 1024**3}\n{cams}"
    )


_ROLES = ("agent", "bare", "burst")


def _count(text: str, needle: str) -> int:
    return text.count(needle)


def _wait_streaming(
    log: Path, needle: str, cameras: int, limit_s: float, proc: subprocess.Popen[bytes]
) -> None:
    """Until `cameras` lines of `log` say a camera streams (or `limit_s` passed)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if _count(log.read_text(errors="replace"), needle) >= cameras:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"a measured process died:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def bench_cameras(cameras: int, profile: str = "h264") -> CamsimProcess:
    """The emulated cameras both benchmarks read: 1080p, 4 Mbit/s, a keyframe every second."""
    return CamsimProcess.start(
        cameras,
        width=1920,
        height=1080,
        bitrate_kbps=4000,
        gop_seconds=1.0,
        loop_seconds=2.0,
        profile=profile,
    )


def _bare(
    tmp: Path, name: str, urls: list[str], out: IO[bytes], pause_s: float = 0.0
) -> subprocess.Popen[bytes]:
    pause = ["--bare-pause", str(pause_s)] if pause_s else []
    return subprocess.Popen(
        [sys.executable, "-m", "bench.agent_capture", *pause, "--bare", str(tmp / name), *urls],
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def run(
    cameras: int,
    window_s: float,
    warmup_limit_s: float,
    profile: str = "h264",
    burst_bare: bool = False,
) -> dict[str, object]:
    """One case: `cameras` emulated cameras of `profile` into the agent and the bare remux
    (and, with `burst_bare`, a second bare remux reading in bursts as the agent does)."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with (
            bench_cameras(cameras, profile) as cams,
            ExitStack() as logs,
        ):
            urls = cams.urls
            cfg = tmp / "agent.toml"
            _agent_config(cfg, tmp / "data", urls)
            outs = {n: logs.enter_context(open(tmp / f"{n}.out", "wb")) for n in _ROLES}
            # All at once: the emulator sets each client up on its own thread (it used to take
            # them one at a time, a GOP each, and the bare waited for the agent's cameras).
            procs = {
                "agent": subprocess.Popen(
                    [sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)],
                    stdout=outs["agent"],
                    stderr=subprocess.STDOUT,
                ),
                "bare": _bare(tmp, "bare", urls, outs["bare"]),
            }
            if burst_bare:
                procs["burst"] = _bare(tmp, "burst", urls, outs["burst"], READ_PAUSE_S)
            try:
                for name, proc in procs.items():
                    needle = ": streaming " if name == "agent" else "connected "
                    _wait_streaming(tmp / f"{name}.out", needle, cameras, warmup_limit_s, proc)
                warmup = time.monotonic() - began
                streaming = {
                    name: _count(
                        (tmp / f"{name}.out").read_text(errors="replace"),
                        ": streaming " if name == "agent" else "connected ",
                    )
                    for name in procs
                }
                measured = {name: Measured(p.pid) for name, p in procs.items()}
                for m in measured.values():
                    m.cpu0 = m.cpu()
                t0 = time.monotonic()
                while time.monotonic() - t0 < window_s:
                    for m in measured.values():
                        m.sample()
                    time.sleep(0.5)
                elapsed = time.monotonic() - t0
                for m in measured.values():
                    m.cpu1 = m.cpu()
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                for p in procs.values():
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(5)
            segments = len(list((tmp / "data" / "buffer" / "segments").glob("*/*/*.ts")))
    pct = {n: 100 * (m.cpu1 - m.cpu0) / elapsed / cameras for n, m in measured.items()}
    ma, mb = measured["agent"], measured["bare"]
    result: dict[str, object] = {
        "cameras": cameras,
        "agent_cpu_pct_per_camera": round(pct["agent"], 2),
        "agent_rss_mb": round(ma.rss_peak / 1e6, 1),
        "bare_cpu_pct_per_camera": round(pct["bare"], 2),
        "bare_rss_mb": round(mb.rss_peak / 1e6, 1),
        "ratio": round(pct["agent"] / pct["bare"], 2) if pct["bare"] > 0 else None,
    }
    if "burst" in pct:
        result["burst_bare_cpu_pct_per_camera"] = round(pct["burst"], 2)
        result["burst_ratio"] = round(pct["agent"] / pct["burst"], 2) if pct["burst"] else None
    result.update(
        {
            "window_s": round(elapsed, 1),
            "warmup_s": round(warmup, 1),
            "streaming_at_start": streaming,
            "segments_committed": segments,
            "total_s": round(time.monotonic() - began, 1),
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_capture", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="8 cameras, 18 s windows")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window")
    parser.add_argument("--warmup-limit", type=float, default=20.0)
    parser.add_argument(
        "--burst-bare",
        action="store_true",
        help="also measure a bare remux that reads in bursts as the agent does",
    )
    parser.add_argument("--bare", nargs="+", metavar=("OUT_DIR", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--bare-pause", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        return run_bare(args.bare[1:], Path(args.bare[0]), args.bare_pause)
    began = time.monotonic()
    window = 18.0 if args.quick else args.seconds
    result = run(args.cameras, window, args.warmup_limit, burst_bare=args.burst_bare)
    h265 = run(args.cameras, window, args.warmup_limit, "h265", args.burst_bare)
    result.update({f"h265_{k}": v for k, v in h265.items() if k != "cameras"})
    result["audio_cpu_pct_per_camera"] = round(audio_conversion_pct(), 3)
    result["total_s"] = round(time.monotonic() - began, 1)
    print(
        f"agent: {result['agent_cpu_pct_per_camera']}% of a core per camera, "
        f"{result['agent_rss_mb']} MB RSS for {result['cameras']} cameras "
        f"(goal ≤ {GOAL_CPU_PCT}%, ≤ {GOAL_RSS_MB_FOR_8} MB for 8)"
    )
    print(
        f"bare PyAV remux: {result['bare_cpu_pct_per_camera']}% per camera, "
        f"{result['bare_rss_mb']} MB; ratio {result['ratio']} (goal ≤ {GOAL_RATIO})"
    )
    print(
        f"H.265: agent {result['h265_agent_cpu_pct_per_camera']}% per camera, bare "
        f"{result['h265_bare_cpu_pct_per_camera']}%; ratio {result['h265_ratio']}"
    )
    if "burst_ratio" in result:
        print(
            f"bare reading in bursts as the agent does: H.264 "
            f"{result['burst_bare_cpu_pct_per_camera']}% (agent / it {result['burst_ratio']}), "
            f"H.265 {result['h265_burst_bare_cpu_pct_per_camera']}% "
            f"({result['h265_burst_ratio']})"
        )
    print(f"G.711 -> AAC: {result['audio_cpu_pct_per_camera']}% of a core per camera with audio")
    print(
        f"window {result['window_s']} s after {result['warmup_s']} s of set-up; "
        f"{result['segments_committed']} segments committed; {result['total_s']} s in all"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
