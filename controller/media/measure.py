"""What the H.264 rendition costs: `python -m controller.media.measure [--seconds 4]`.

Makes an H.265 clip per size with libx265 (testsrc2 with sensor-like noise, 25 fps, a
keyframe every 2 s), then measures on this machine, one thread each:
- the ingest probe (container header only) per segment, in microseconds;
- a native single-threaded HEVC decode, the floor of what a browser-side (WebAssembly)
  decoder would spend per second of video on the viewer's device;
- the conversion `transcode_h264` does, per preset, as CPU milliseconds per second of video
  (the share of one core a live viewer of an unconverted segment costs the controller).
The last line is JSON with every figure (docs/playback-hevc.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from av.filter import Graph
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from controller.media.probe import probe_file
from controller.media.transcode import PRESETS, transcode_h264

SIZES = {"320x240": (320, 240), "1080p": (1920, 1080)}
FPS = 25


def make_hevc(path: Path, width: int, height: int, seconds: float, noise: int = 12) -> Path:
    """An H.265 MPEG-TS clip of moving test pictures with noise (cameras are noisy)."""
    graph = Graph()
    src = graph.add("testsrc2", f"size={width}x{height}:rate={FPS}")
    grain = graph.add("noise", f"alls={noise}:allf=t")
    fmt = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    src.link_to(grain)
    grain.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx265", rate=FPS)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "x265-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0:"
            "repeat-headers=1:log-level=error",
        }
        for i in range(int(seconds * FPS)):
            frame = sink.pull()
            assert isinstance(frame, VideoFrame)
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def decode_cpu_ms(path: Path) -> tuple[float, int]:
    started = time.thread_time()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        frames = sum(1 for _ in container.decode(stream))
    return (time.thread_time() - started) * 1000, frames


def probe_us(path: Path, runs: int = 20) -> int:
    costs = sorted(probe_file(path).probe_us for _ in range(runs))
    return costs[len(costs) // 2]


def _process_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def measure(seconds: float, presets: tuple[str, ...], noise: int = 12) -> dict[str, object]:
    results: dict[str, object] = {"seconds": seconds, "fps": FPS, "noise": noise}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (width, height) in SIZES.items():
            src = make_hevc(Path(tmp) / f"{name}.ts", width, height, seconds, noise)
            cpu, frames = decode_cpu_ms(src)
            results[f"{name}_probe_us"] = probe_us(src)
            results[f"{name}_hevc_decode_cpu_ms_per_s"] = round(cpu / (frames / FPS), 1)
            results[f"{name}_hevc_bitrate_kbps"] = round(src.stat().st_size * 8 / seconds / 1000)
            for preset in presets:
                before = _process_cpu_ms()
                stats = transcode_h264(src, Path(tmp) / f"{name}-{preset}.ts", preset)
                process_ms = _process_cpu_ms() - before
                per_s = stats.cpu_ms / (stats.frames / FPS)
                results[f"{name}_{preset}_cpu_ms_per_s"] = round(per_s, 1)
                # every thread of the process: shows nothing runs outside the measured one
                results[f"{name}_{preset}_process_cpu_ms_per_s"] = round(
                    process_ms / (stats.frames / FPS), 1
                )
                results[f"{name}_{preset}_realtime_x"] = round(
                    (stats.frames / FPS) / (stats.wall_ms / 1000), 2
                )
                results[f"{name}_{preset}_h264_kbps"] = round(stats.bytes_out * 8 / seconds / 1000)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument(
        "--noise", type=int, default=12, help="sensor-like grain (0 = clean test pictures)"
    )
    args = parser.parse_args(argv)
    presets = tuple(p for p in args.presets.split(",") if p)
    results = measure(args.seconds, presets, args.noise)
    lines = [f"{key:42s} {value}" for key, value in results.items()]
    sys.stdout.write("\n".join([*lines, json.dumps(results, sort_keys=True)]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
