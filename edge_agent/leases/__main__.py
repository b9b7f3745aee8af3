"""`python -m edge_agent.leases`: the leased uplink alone, on one buffer directory.

What an agent in `uplink.mode = "leased"` runs, without capture: it reports the buffer's
backlog to the controller, keeps the lease stream open, pins the holds the controller asks
for, and uploads only leased segments at the leased rate. For buffers carried from a dead
NVR, and for the rig tests (agents in network namespaces behind shaped links).

Prints one JSON line per AgentEvent (`"event": ...`) and, on exit, a summary line
(`"summary": true`). Exit status: 0 stopped by SIGTERM/SIGINT, 2 bad arguments or set-up
(unreadable TLS files, buffer in use).
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
from edge_agent.leases.client import LeaseClientOptions
from edge_agent.leases.wiring import leased_uplink
from edge_agent.redact import redact_url, setup_logging
from edge_agent.store import SegmentBuffer, StoreError
from edge_agent.uplink.errors import UplinkError
from edge_agent.uplink.uploader import RetryPolicy
from vigil_common.signals import stop_on_signals

log = logging.getLogger("edge_agent.leases")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_agent.leases", description=__doc__)
    p.add_argument("--buffer", type=Path, required=True, help="the agent's buffer directory")
    p.add_argument("--quota-bytes", type=int, default=50 * 1024**3)
    p.add_argument("--device-id", required=True, help="this device (its certificate's CN)")
    p.add_argument(
        "--controller",
        required=True,
        help="host:port of the controller's gRPC (several replicas: comma-separated, in order)",
    )
    p.add_argument("--server-name", default="", help="TLS name to expect, if not the host")
    p.add_argument("--ca-cert", required=True)
    p.add_argument("--client-cert", required=True)
    p.add_argument("--client-key", required=True)
    p.add_argument("--chunk-bytes", type=int, default=64 * 1024)
    p.add_argument("--inventory-interval-s", type=float, default=30.0)
    p.add_argument("--camera", action="append", help="cameras this device has (default: any)")
    p.add_argument("--archive-camera", action="append", default=[], help="archived by policy")
    # The lease stream's reconnect backoff (short: back within ~1 s of the controller) and the
    # uploads' retry backoff (long, ended early when the controller says it is ready).
    p.add_argument("--backoff-initial-s", type=float, default=0.25)
    p.add_argument("--backoff-cap-s", type=float, default=1.0)
    p.add_argument("--upload-backoff-initial-s", type=float, default=None)
    p.add_argument("--upload-backoff-cap-s", type=float, default=None)
    p.add_argument("--settle-s", type=float, default=120.0)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _line(kind: str, data: object) -> None:
    print(json.dumps({kind: data}), flush=True)  # noqa: T201 - the process's output


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
            chunk_bytes=args.chunk_bytes,
        )
        buffer = SegmentBuffer.open(args.buffer, args.quota_bytes, clock)
    except (StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    options = LeaseClientOptions(
        inventory_interval_s=args.inventory_interval_s,
        backoff_initial_s=args.backoff_initial_s,
        backoff_cap_s=args.backoff_cap_s,
        settle_s=args.settle_s,
    )
    try:
        uploader, leases = leased_uplink(
            args.device_id, cfg, buffer, clock, lambda e: _line("event", dataclasses.asdict(e)),
            cameras=args.camera, archive_cameras=args.archive_camera, options=options,
            policy=RetryPolicy(initial_s=args.upload_backoff_initial_s or args.backoff_initial_s,
                               cap_s=args.upload_backoff_cap_s or args.backoff_cap_s, park_s=60),
            server_name=args.server_name or None,
        )  # fmt: skip
    except UplinkError as exc:
        buffer.close()
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    done = stop_on_signals(log)
    log.info("leased uplink for %s to %s", args.device_id, redact_url(args.controller))
    uploader.start()
    leases.start()
    try:
        done.wait()
    finally:
        leases.stop()
        uploader.stop()
        stats = uploader.stats()
        buffer.close()
    summary = {
        "summary": True,
        **dataclasses.asdict(stats),
        "lease_counters": dict(leases.counters),
        "control_address": leases.control.route.current(),
        "controller_failovers": leases.control.route.snapshot().failovers,
    }
    print(json.dumps(summary), flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
