"""`python -m edge_agent.health --config agent.toml`: only the MQTT health reporter.

A device's presence without capture or upload: used to check a site's broker account and
ACL during installation, and by tests that must kill a real agent process (Last Will).
SIGTERM/SIGINT stop it cleanly (retained offline state, reason "clean").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_agent.clock import SystemClock
from edge_agent.config import ConfigError, load_config
from edge_agent.health.inputs import ReporterInputs
from edge_agent.health.reporter import HealthReporter
from edge_agent.model import CameraStatus
from edge_agent.redact import setup_logging
from vigil_common.signals import stop_on_signals

VERSION = "0.1.0"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent.health", description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--check-config", action="store_true", help="validate and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        password = ""
        if config.mqtt.password_file:
            password = Path(config.mqtt.password_file).read_text(encoding="utf-8").strip()
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.check_config:
        return 0
    setup_logging(config.log_level, config.log_format)
    if not config.mqtt.host:
        print("error: mqtt.host is empty: nothing to report to", file=sys.stderr)  # noqa: T201
        return 2
    statuses = [CameraStatus(camera_id=c.id) for c in config.cameras]
    reporter = HealthReporter(
        config,
        SystemClock(),
        ReporterInputs(statuses=lambda: statuses),
        agent_version=VERSION,
        password=password,
    )
    stop = stop_on_signals()
    reporter.start()
    stop.wait()
    reporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
