"""`python -m edge_agent.uplink`: the uplink alone, draining one buffer directory.

For a buffer disk carried from a dead NVR to a working machine, for operators checking a
controller's certificate set-up, and for the transport fault tests (which kill this process
with SIGKILL mid-upload). The full agent wires the same pieces in `edge_agent.app`.

Prints one JSON line per AgentEvent and, on exit, a JSON summary line (`"summary": true`).
Exit status: 0 drained (with --exit-when-idle) or stopped by SIGTERM/SIGINT, 2 bad arguments or
set-up (unreadable TLS files, buffer in use).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent.clock import SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.model import AgentEvent
from edge_agent.redact import setup_logging
from edge_agent.store import SegmentBuffer, StoreError
from edge_agent.uplink.errors import UplinkError
from edge_agent.uplink.routing import open_client
from edge_agent.uplink.uploader import RetryPolicy, Uploader
from vigil_common.signals import stop_on_signals

log = logging.getLogger("edge_agent.uplink")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_agent.uplink", description=__doc__)
    p.add_argument("--buffer", type=Path, required=True, help="the agent's buffer directory")
    p.add_argument("--quota-bytes", type=int, default=50 * 1024**3)
    p.add_argument(
        "--controller",
        required=True,
        help="host:port of the controller's gRPC (several replicas: comma-separated, in order)",
    )
    p.add_argument("--ca-cert", required=True)
    p.add_argument("--client-cert", required=True)
    p.add_argument("--client-key", required=True)
    p.add_argument("--rate-bps", type=int, default=8_000_000, help="upload cap, bits/s")
    p.add_argument("--chunk-bytes", type=int, default=1024 * 1024)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--backoff-initial-s", type=float, default=1.0)
    p.add_argument("--backoff-cap-s", type=float, default=60.0)
    p.add_argument("--exit-when-idle", action="store_true", help="exit once nothing is left")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _emit(event: AgentEvent) -> None:
    print(json.dumps({"event": dataclasses.asdict(event)}), flush=True)  # noqa: T201


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    clock = SystemClock()
    try:
        cfg = UplinkConfig(
            controllers=[a for a in args.controller.split(",") if a.strip()],
            ca_cert=args.ca_cert,
            client_cert=args.client_cert,
            client_key=args.client_key,
            rate_bps=args.rate_bps,
            chunk_bytes=args.chunk_bytes,
            concurrency=args.concurrency,
        )
        policy = RetryPolicy(initial_s=args.backoff_initial_s, cap_s=args.backoff_cap_s)
        client = open_client(cfg, clock)
    except (ValueError, UplinkError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        buffer = SegmentBuffer.open(args.buffer, args.quota_bytes, clock)
    except StoreError as exc:
        client.close()
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    done = stop_on_signals(log)
    uploader = Uploader(
        buffer, client, clock, _emit, policy=policy, concurrency=cfg.concurrency, idle_poll_s=0.2
    )
    uploader.start()
    try:
        while not done.wait(0.2):
            if args.exit_when_idle and uploader.idle():
                break
    finally:
        uploader.stop()
        client.close()
        stats = uploader.stats()
        buffer.close()
    route = client.route.snapshot()
    summary = {
        "summary": True,
        **dataclasses.asdict(stats),
        "upload_address": route.address,
        "controller_failovers": route.failovers,
    }
    print(json.dumps(summary), flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
