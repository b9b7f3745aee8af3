"""`vigil-agent`: run the agent, check a configuration, show the buffer.

    vigil-agent run --config agent.toml
    vigil-agent --check-config agent.toml        (or: vigil-agent check-config agent.toml)
    vigil-agent status --config agent.toml [--json]
    vigil-agent enroll --config agent.toml --address H:P --token-file F   (edge_agent/enrollment.py)

Exit codes: 0 fine, 1 the agent could not start (e.g. its buffer is unusable), 2 the
configuration is unreadable or invalid (the message says which file and which field).
SIGTERM and SIGINT stop cleanly (open segments are committed); SIGHUP reloads the
configuration's cameras and keeps the old configuration if the new one is bad.
Every log line goes through `RedactingFilter`: camera credentials never reach the log.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from edge_agent.clock import SystemClock
from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.memory import limit_arenas
from edge_agent.redact import redact_text, redact_url, setup_logging

if TYPE_CHECKING:
    from edge_agent.app import Agent

# The agent's heavy modules (PyAV, SQLite buffer) are imported by the commands that use them,
# so `--check-config` and `--help` answer fast on a small NVR.

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("edge_agent")


def _out(text: str) -> None:
    """CLI output on stdout (what the command was asked for; logs go to stderr)."""
    sys.stdout.write(text + "\n")


def _error(message: str) -> None:
    sys.stderr.write(redact_text(message) + "\n")


def _load(path: str) -> AgentConfig | None:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        _error(str(exc))
        return None


def cmd_check_config(path: str) -> int:
    config = _load(path)
    if config is None:
        return EXIT_CONFIG
    _out(f"{path}: ok (device {config.device_id}, {len(config.cameras)} cameras)")
    for cam in config.cameras:
        where = redact_url(cam.url) if cam.kind == "rtsp" else cam.path
        _out(f"  {cam.id}: {cam.kind} {where} segments {cam.segment_seconds:g} s {cam.container}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.app import Agent
    from edge_agent.store import StoreError
    from edge_agent.wiring import wire_components

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or config.log_level, config.log_format)
    stop = threading.Event()
    reload = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        reload.set()
        stop.set()  # wake the main loop, which tells reload from stop

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    limit_arenas()  # before any capture thread allocates (edge_agent/memory.py says why)
    clock = SystemClock()
    try:
        agent = Agent.open(config, clock)
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_FAILED
    try:
        wire_components(agent, config, clock)
    except Exception as exc:  # a bad TLS file or password file: say which, do not start
        log.error("cannot start: %s", exc)
        agent.stop()
        return EXIT_FAILED
    agent.start()
    settle_collector()
    try:
        while True:
            # Wake every second: a signal delivered to another thread only runs its Python
            # handler when the main thread next executes bytecode, not inside a bare wait().
            while not stop.wait(1.0):
                pass
            if not reload.is_set():
                break
            reload.clear()
            stop.clear()
            _reload(agent, args.config)
    finally:
        agent.stop()
    return EXIT_OK


def settle_collector() -> None:
    """Tune Python's cyclic garbage collector for a process that now only streams.

    What start-up made (modules, configuration, clients, threads) lives as long as the process:
    frozen, later collections no longer walk it. Capture allocates a few objects per packet,
    nearly all freed by reference counting, so a youngest-generation collection every 700
    allocations (the default) mostly walks live per-packet objects for nothing; every 50,000
    costs a few MB at most. Profiled with `perf`, the collector was 10-20 % of the agent's CPU
    before (docs/benchmarks.md, "Agent capture").
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _reload(agent: Agent, path: str) -> None:
    try:
        config = load_config(Path(path))
    except ConfigError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return
    log.info("reloading cameras from %s", path)
    agent.reconfigure(config)


def cmd_status(args: argparse.Namespace) -> int:
    from edge_agent.app import buffer_dir, status_path
    from edge_agent.store import SegmentBuffer, StoreError

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    report: dict[str, object]
    try:
        buffer = SegmentBuffer.open(buffer_dir(config), config.buffer.quota_bytes, SystemClock())
    except StoreError as exc:
        # The running agent holds the buffer: show what it last wrote.
        try:
            report = json.loads(status_path(config).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _error(f"cannot open the buffer ({exc}) and no status file at {status_path(config)}")
            return EXIT_FAILED
        report["source"] = "status file of the running agent"
    else:
        with buffer:
            cameras = {}
            for cam in config.cameras:
                segments = buffer.segments(cam.id)
                cameras[cam.id] = {
                    "segments": len(segments),
                    "first_start_us": segments[0].start_us if segments else None,
                    "last_end_us": segments[-1].end_us if segments else None,
                    "gaps": len(buffer.gaps(cam.id)),
                    "chain_problems": buffer.verify_chain(cam.id),
                }
            report = {
                "device_id": config.device_id,
                "source": "buffer (agent not running)",
                "buffer": asdict(buffer.stats()),
                "cameras": cameras,
            }
    if args.json:
        _out(json.dumps(report, sort_keys=True))
    else:
        _print_report(report)
    return EXIT_OK


def _print_report(report: dict[str, object]) -> None:
    _out(f"device {report.get('device_id')} ({report.get('source')})")
    buf = report.get("buffer")
    if isinstance(buf, dict):
        quota = buf.get("quota_bytes") or 1
        total = buf.get("total_bytes") or 0
        _out(
            f"buffer: {total} of {quota} bytes ({100 * total / quota:.1f}%), "
            f"{buf.get('unsent_segments')} unsent, {buf.get('uploaded_segments')} uploaded, "
            f"{buf.get('held_segments')} held"
        )
    cams = report.get("cameras")
    if isinstance(cams, dict):
        for cid, info in cams.items():
            _out(f"  {cid}: {info}")
    elif isinstance(cams, list):
        for info in cams:
            if isinstance(info, dict):
                _out(
                    f"  {info.get('camera_id')}: connected={info.get('connected')} "
                    f"fps={float(info.get('fps') or 0):.1f} bitrate={info.get('bitrate_bps')} "
                    f"gaps={len(info.get('gaps') or [])} last_error={info.get('last_error')!r}"
                )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil-agent",
        description="Vigil edge agent: capture cameras into a durable buffer and upload them.",
    )
    parser.add_argument(
        "--check-config", metavar="FILE", help="validate FILE and exit (0 ok, 2 invalid)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the agent until SIGTERM")
    run.add_argument("--config", required=True, help="agent.toml")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", help="agent.toml")
    check.add_argument("--config", dest="config_opt", help="agent.toml (same as FILE)")
    status = sub.add_parser("status", help="show the buffer and the cameras")
    status.add_argument("--config", required=True, help="agent.toml")
    status.add_argument("--json", action="store_true", help="one JSON object")
    from edge_agent.enrollment import add_parser as add_enroll

    add_enroll(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check_config:
        return cmd_check_config(args.check_config)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "check-config":
        path = args.file or args.config_opt
        if not path:
            parser.error("check-config needs a FILE")
        return cmd_check_config(path)
    if args.command == "status":
        return cmd_status(args)
    if args.command == "enroll":
        from edge_agent.enrollment import cmd_enroll

        config = _load(args.config)
        return EXIT_CONFIG if config is None else cmd_enroll(config, args, SystemClock().now_us)
    parser.print_help(sys.stderr)
    return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
