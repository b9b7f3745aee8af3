"""`vigil-camsim`: emulated IP cameras (RTSP) and handheld terminals for test rigs and demos.

    vigil-camsim serve --cameras 4 --port 8554 --control-port 8555
    vigil-camsim serve --cameras 3 --preset d1 --profile h265 --camera-profile 3=h264-bframes-pcma
    vigil-camsim handheld --dir /srv/drop --interval 10 --format ts
    vigil-camsim nvr-folder --dir /srv/nvr/ch01 --tz Asia/Shanghai --clip-seconds 60

`serve` replaces itself with the GStreamer server under /usr/bin/python3 (one PID to stop,
Ctrl-C goes straight to it); `handheld` and `nvr-folder` run in this process until Ctrl-C or
--count files. Profiles (profiles.py): h264 (default), h264-bframes, h265, h265-bframes, mjpeg,
each optionally with -aac, -pcma or -pcmu audio, and audio-only-aac|pcma|pcmu.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from edge_agent.clock import SystemClock
from vigil_camsim import profiles
from vigil_camsim.launcher import GST_PYTHON, INSTALL_HINT, CamsimError, CamsimOptions


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve N emulated H.264 cameras over RTSP with a fault-control HTTP API",
        description="Serve emulated H.264 cameras at rtsp://ADDRESS:PORT/cam/<id> (ids 1..N), "
        "with a JSON fault-control API at http://ADDRESS:CONTROL_PORT/cameras. "
        "Runs until Ctrl-C.",
    )
    p.add_argument("--cameras", type=int, default=1, help="number of cameras (default 1)")
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554)")
    p.add_argument("--control-port", type=int, default=8555, help="HTTP control port")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=4000, help="kbit/s (default 4000)")
    p.add_argument("--gop-seconds", type=float, default=2.0, help="keyframe interval")
    p.add_argument("--loop-seconds", type=float, default=4.0, help="length of the encoded loop")
    p.add_argument("--label-prefix", default="CAM", help="picture label: '<prefix> <id>'")
    p.add_argument(
        "--preset",
        choices=list(profiles.PRESETS),
        default=None,
        help="named size, overrides --width/--height: d1 704x576, 720p, 1080p, 4mp 2560x1440",
    )
    p.add_argument(
        "--profile",
        default=profiles.DEFAULT_PROFILE,
        help="every camera's profile: h264 | h264-bframes | h265 | h265-bframes | mjpeg, "
        "optionally with -aac, -pcma or -pcmu audio; or audio-only-aac|pcma|pcmu "
        "(default h264, no audio)",
    )
    p.add_argument(
        "--camera-profile",
        action="append",
        default=[],
        metavar="ID=PROFILE",
        help="one camera's profile, e.g. 2=h265 (repeatable, or comma-separated)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="encoded-loop cache")
    p.add_argument(
        "--stamp-wallclock",
        action="store_true",
        help="put each frame's send time (SEI user data) into it, for latency measurements",
    )
    p.add_argument("--python", default=GST_PYTHON, help="interpreter with gi (Debian python3)")


def _handheld_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "handheld",
        help="write short H.264 clips into a drop folder at intervals",
        description="Emulate a handheld terminal: every INTERVAL seconds write a labelled clip "
        "(temporary hidden name, then rename) into DIR.",
    )
    p.add_argument("--dir", type=Path, required=True, help="drop folder")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between clips")
    p.add_argument("--format", choices=["mp4", "ts"], default="mp4")
    p.add_argument("--clip-seconds", type=float, default=5.0)
    p.add_argument("--device", default="HH01", help="device id in names and picture")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=1000, help="kbit/s")
    p.add_argument("--count", type=int, default=None, help="stop after this many clips")
    p.add_argument(
        "--corrupt-every", type=int, default=0, help="make every Nth clip truncated (0: never)"
    )


def _nvr_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nvr-folder",
        help="write one NVR channel's recordings, named in local time, into a folder",
        description="Emulate an NVR recording folder: files named by start (and end) in the "
        "recorder's LOCAL time (--tz, default Asia/Shanghai), written whole (temp name, then "
        "rename) as each span ends; or, with --start, COUNT consecutive files at once.",
    )
    p.add_argument("--dir", type=Path, required=True, help="the channel's folder")
    p.add_argument("--tz", default="Asia/Shanghai", help="zone of the names (IANA name)")
    p.add_argument(
        "--style",
        choices=["range", "hik", "compact"],
        default="range",
        help="range: ch01_20261203_143000_20261203_143500.mp4, "
        "hik: ch01_20261203143000_20261203143500.mp4, compact: 20261203143000.ts",
    )
    p.add_argument(
        "--layout",
        choices=["flat", "dated"],
        default="flat",
        help="dated: files in a local-date folder (2026-12-03/...)",
    )
    p.add_argument("--format", choices=["mp4", "ts"], default="mp4")
    p.add_argument("--channel", type=int, default=1)
    p.add_argument(
        "--profile",
        default="h264",
        help="h264 | h264-bframes | h265 | h265-bframes, optionally with -aac",
    )
    p.add_argument("--clip-seconds", type=int, default=60, help="length of each file")
    p.add_argument(
        "--start",
        default=None,
        help="local start of a backfill, e.g. 2026-12-03T14:30:00 (needs --count)",
    )
    p.add_argument("--count", type=int, default=None, help="stop after this many files")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=180)
    p.add_argument("--preset", choices=list(profiles.PRESETS), default=None)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--bitrate", type=int, default=500, help="kbit/s")
    p.add_argument("--gop-seconds", type=float, default=1.0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil-camsim",
        description="Emulated IP cameras (real H.264 over RTSP, with fault injection) and "
        "handheld terminals, for Vigil test rigs and demos.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _handheld_parser(sub)
    _nvr_parser(sub)
    from vigil_camsim import onvif

    onvif.add_parser(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if not os.access(args.python, os.X_OK):
        print(f"vigil-camsim: {args.python} not found. {INSTALL_HINT}", file=sys.stderr)  # noqa: T201
        return 2
    options = CamsimOptions(
        cameras=args.cameras,
        width=args.width,
        height=args.height,
        fps=args.fps,
        bitrate_kbps=args.bitrate,
        gop_seconds=args.gop_seconds,
        loop_seconds=args.loop_seconds,
        label_prefix=args.label_prefix,
        address=args.address,
        cache_dir=args.cache_dir,
        preset=args.preset,
        profile=args.profile,
        camera_profiles=tuple(args.camera_profile),
        stamp_wallclock=args.stamp_wallclock,
    )
    try:
        options.checked()
    except CamsimError as exc:
        print(f"vigil-camsim serve: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    argv = options.argv(args.python, args.port, args.control_port)
    sys.stdout.flush()
    os.execv(args.python, argv)  # noqa: S606 - fixed interpreter, arguments built above
    return 0  # not reached


def _handheld(args: argparse.Namespace) -> int:
    from vigil_camsim.handheld import HandheldConfig, HandheldEmulator

    try:
        config = HandheldConfig(
            drop_dir=args.dir,
            device_id=args.device,
            fmt=args.format,
            clip_seconds=args.clip_seconds,
            interval_seconds=args.interval,
            width=args.width,
            height=args.height,
            fps=args.fps,
            bitrate_kbps=args.bitrate,
            corrupt_every=args.corrupt_every,
        )
        emulator = HandheldEmulator(config, SystemClock())
    except ValueError as exc:
        print(f"vigil-camsim handheld: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    stop = threading.Event()
    print(f"vigil-camsim handheld: writing clips into {args.dir} (Ctrl-C to stop)", flush=True)  # noqa: T201
    try:
        written = emulator.run(stop, count=args.count, on_clip=lambda p: print(p, flush=True))  # noqa: T201
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(f"vigil-camsim handheld: wrote {len(written)} clip(s)")  # noqa: T201
    return 0


def _nvr_folder(args: argparse.Namespace) -> int:
    from vigil_camsim.nvr_folder import NvrConfig, NvrFolderEmulator, parse_local, zone

    try:
        width, height = args.width, args.height
        if args.preset is not None:
            width, height = profiles.preset_size(args.preset)
        config = NvrConfig(
            folder=args.dir,
            channel=args.channel,
            tz=args.tz,
            style=args.style,
            layout=args.layout,
            fmt=args.format,
            profile=args.profile,
            clip_seconds=args.clip_seconds,
            width=width,
            height=height,
            fps=args.fps,
            bitrate_kbps=args.bitrate,
            gop_seconds=args.gop_seconds,
        )
        emulator = NvrFolderEmulator(config, SystemClock())
        start_us = None if args.start is None else parse_local(args.start, zone(args.tz))
        if start_us is not None and (args.count is None or args.count < 1):
            raise ValueError("--start needs --count (how many files to write)")
    except ValueError as exc:
        print(f"vigil-camsim nvr-folder: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if start_us is not None:
        for path in emulator.backfill(start_us, args.count):
            print(path, flush=True)  # noqa: T201
        return 0
    print(f"vigil-camsim nvr-folder: recording into {args.dir} (Ctrl-C to stop)", flush=True)  # noqa: T201
    stop = threading.Event()
    try:
        emulator.run(stop, count=args.count, on_file=lambda p: print(p, flush=True))  # noqa: T201
    except KeyboardInterrupt:
        stop.set()
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "onvif":
        from vigil_camsim import onvif

        return onvif.run(args)
    if args.command == "nvr-folder":
        return _nvr_folder(args)
    return _handheld(args)


if __name__ == "__main__":
    sys.exit(main())
