"""`vigil-controller report`: the platform's evaluation for a period, as HTML, CSV or JSON.

    vigil-controller report --config controller.toml --from 2026-11-01 --to 2026-12-01 \\
        [--org wudu] [--format html|csv|json] [--out report.html]

Times: ISO 8601 or unix microseconds; without a zone, Asia/Shanghai (controller/times.py).
Exit status: 0 written, 1 the database cannot be read, 2 bad input (a period with --from
after --to, an unknown organisation, a period before any data), each said in one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any

from controller import times
from controller.cli_args import add_config_args, config_and_engine
from controller.config import ConfigError

log = logging.getLogger("vigil.kpi")


def _time(text: str) -> int:
    try:
        return times.parse_time_us(text, naive=times.LOCAL_ZONE)
    except times.TimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `report` to `vigil-controller`."""
    p = sub.add_parser("report", help="KPIs and loss accounting for a period (HTML, CSV, JSON)")
    add_config_args(p)
    p.add_argument("--from", dest="start", type=_time, required=True, help="period start")
    p.add_argument("--to", dest="end", type=_time, required=True, help="period end")
    p.add_argument("--org", help="only the cameras this organisation may see (e.g. wudu)")
    p.add_argument("--format", choices=("html", "csv", "json"), default="html")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from controller.catalog.errors import CatalogError
    from controller.clock import SystemClock
    from controller.kpi.service import ReportInputError, make_report, render

    try:
        config, engine = config_and_engine(args)
    except (ConfigError, ValueError) as exc:
        print(f"report: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    try:
        policy = _policy(config.policy_file)
    except (OSError, ValueError) as exc:
        engine.dispose()
        print(f"report: policy_file {config.policy_file}: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        report = make_report(
            engine,
            SystemClock(),
            policy,
            config.kpi.targets(),
            args.start,
            args.end,
            args.org,
        )
    except ReportInputError as exc:
        print(f"report: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    except CatalogError as exc:
        print(f"report: cannot read the database: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        engine.dispose()
    text = render(report, args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        log.info("report written to %s", args.out)
    return 0


def _policy(path: str) -> Any:
    """The tier policy the API uses (`policy_file`: TOML, or JSON by suffix; "" built in)."""
    from controller.grants.policy import default_policy, policy_from_mapping

    if not path:
        return default_policy()
    text = Path(path).read_text(encoding="utf-8")
    return policy_from_mapping(json.loads(text) if path.endswith(".json") else tomllib.loads(text))
