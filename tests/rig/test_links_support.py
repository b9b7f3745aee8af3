"""The link rig's controller process (no tests in here).

    python -m tests.rig.test_links_support --data-dir D --listen 192.0.2.1:P \\
        --topology T.toml --snapshot S.json [--horizon-s 3]

A real controller (mutual-TLS gRPC, SQLite, local object store) with the scheduler wired in
as `serve` will wire it, run inside the rig's controller namespace. Every 0.25 s it writes
the scheduler's snapshot (plan rates, leases, delivered rates per link) to S.json
atomically, so the test can compare what was planned with what the links delivered.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from controller.assembly import Parts, build_controller
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.scheduler.service import SchedulerOptions
from vigil_common.signals import stop_on_signals


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--topology", required=True)
    p.add_argument("--snapshot", type=Path, required=True)
    p.add_argument("--horizon-s", type=float, default=3.0)
    p.add_argument("--lease-grace-s", type=float, default=1.0)
    args = p.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = SchedulerOptions(
        topology_path=args.topology,
        horizon_s=args.horizon_s,
        evidence_horizon_s=1.0,
        lease_grace_s=args.lease_grace_s,
        tick_s=0.1,
        replan_interval_s=args.horizon_s / 2,
        progress_interval_s=0.25,
        delivery_window_s=5.0,
    )
    config = ControllerConfig.model_validate(
        {"data_dir": args.data_dir, "grpc": {"listen": args.listen}}
    )
    controller = build_controller(config, SystemClock(), Parts(scheduler=options))
    assert controller.scheduler is not None
    scheduler = controller.scheduler
    stop = stop_on_signals()
    controller.start()
    try:
        while not stop.wait(0.25):
            data = dataclasses.asdict(scheduler.snapshot())
            tmp = args.snapshot.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, args.snapshot)
    finally:
        controller.stop(grace_s=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
