"""Benchmark: the agent's own CPU per segment, replayed from a recorded camera (steadier than
`bench.agent_capture` on a loaded machine: no network, no emulator, no other process).

A recording of one emulated 1080p 4 Mbit/s camera (1 s GOP; made here from camsim unless
`--source` names one) is read, as fast as the CPU allows, by
- `bare`: demux and remux into one MPEG-TS file (what `bench.agent_capture`'s bare process does);
- `agent`: demux and the agent's capture path: its per-packet loop (status figures, the live
  and image taps idle), `SegmentWriter` cutting 10 s segments, committed to a real
  `SegmentBuffer` (hash, fsync, rename, SQLite index), opened before the measured time.
Rounds alternate; the CPU time (process, user + system) of each is divided by the segments the
agent committed. Last line: JSON with `agent_ms_per_segment`, `bare_ms_per_segment`,
`overhead_ms_per_segment` (agent - bare) and `ratio`, from the cheapest round of each (other
jobs on the machine only ever add time), and the medians (`*_median`).

    python -m bench.agent_capture_replay --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import av.error

from edge_agent.capture.status import StatusTracker, media_seconds
from edge_agent.capture.writer import SegmentWriter
from edge_agent.clock import SystemClock
from edge_agent.segmenter import CutPolicy
from edge_agent.store import SegmentBuffer

T0_US = 1_800_000_000_000_000


def record(path: Path, seconds: float, profile: str = "h264") -> None:
    from bench.agent_capture import bench_cameras

    with bench_cameras(1, profile) as cams:
        src = av.open(cams.urls[0], options={"rtsp_transport": "tcp"}, timeout=(30, 10))
        video = src.streams.video[0]
        with av.open(str(path), "w", format="mpegts") as out:
            stream = out.add_stream_from_template(video)
            began = time.monotonic()
            for packet in src.demux(video):
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = stream
                try:
                    out.mux(packet)
                except (av.error.FFmpegError, ValueError):
                    continue
                if time.monotonic() - began > seconds:
                    break
        src.close()


def bare(source: Path, out_dir: Path) -> None:
    with av.open(str(source)) as src, av.open(str(out_dir / "bare.ts"), "w", "mpegts") as out:
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.size == 0 or packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)


def agent(source: Path, buffer: SegmentBuffer) -> int:
    """The capture path into an open buffer (opening one, its SQLite index and recovery, is
    start-up work, not per-segment work: until 2026-12-04 it was inside the measured time,
    ~4 ms of CPU per round, about 0.9 ms per segment charged to the agent)."""
    writer = SegmentWriter("cam1", buffer, CutPolicy.for_seconds(10))
    tracker = StatusTracker("cam1")
    with av.open(str(source)) as src:
        video = src.streams.video[0]
        tick_s = float(video.time_base or 0)
        started = False
        for packet in src.demux(video):
            if packet.size == 0:
                continue
            media = media_seconds(packet, tick_s)
            now = T0_US + int(media * 1e6)  # as if it arrived in real time
            if not started:
                started = True
                writer.begin(video, now, live=True)
            size, key = packet.size, packet.is_keyframe
            writer.feed(packet, now)
            tracker.packet(size, key, now, media)
        writer.end(truncated=True)
    return writer.segments_committed


def measure(what: Any, *args: Any) -> tuple[float, Any]:
    began = time.process_time()
    result = what(*args)
    return time.process_time() - began, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_capture_replay")
    parser.add_argument("--source", type=Path, help="an MPEG-TS recording (default: camsim)")
    parser.add_argument("--seconds", type=float, default=45.0, help="of camsim to record")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vigil-replay-") as tmp_name:
        tmp = Path(tmp_name)
        source = args.source
        if source is None:
            source = tmp / "camera.ts"
            record(source, args.seconds)
        agent_ms: list[float] = []
        bare_ms: list[float] = []
        for n in range(args.rounds):
            out = tmp / f"round{n}"
            out.mkdir()
            buffer = SegmentBuffer.open(out / "buffer", 20 * 1024**3, SystemClock())
            try:
                cpu_a, segments = measure(agent, source, buffer)
            finally:
                buffer.close()
            cpu_b, _ = measure(bare, source, out)
            agent_ms.append(1000 * cpu_a / segments)
            bare_ms.append(1000 * cpu_b / segments)
    a, b = min(agent_ms), min(bare_ms)
    am, bm = statistics.median(agent_ms), statistics.median(bare_ms)
    result = {
        "segments_per_round": segments,
        "agent_ms_per_segment": round(a, 2),
        "bare_ms_per_segment": round(b, 2),
        "overhead_ms_per_segment": round(a - b, 2),
        "ratio": round(a / b, 3),
        "agent_ms_per_segment_median": round(am, 2),
        "bare_ms_per_segment_median": round(bm, 2),
        "ratio_median": round(am / bm, 3),
        "agent_rounds": [round(x, 1) for x in agent_ms],
        "bare_rounds": [round(x, 1) for x in bare_ms],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
