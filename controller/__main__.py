"""`vigil-controller`: one command, one subcommand per concern.

Each concern's package offers `register(subparsers)` in its own `cli` module, so adding a
command never touches another concern's code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vigil_common.redact import redact_handlers

# Packages whose `cli.register(subparsers)` adds subcommands, in --help order.
COMMAND_MODULES = (
    "controller.pki.cli",
    "controller.serve_cli",
    "controller.database.cli",
    "controller.fleet.registry_cli",
    "controller.enrollment.cli",
    "controller.fleet.cli",
    "controller.scheduler.cli",
    "controller.retention.cli",
    "controller.grants.cli",
    "controller.exports.cli",
    "controller.fleet.witness_cli",
    "controller.audit.cli",
    "controller.users.cli",
    "controller.jobs.cli",
    "controller.directory.cli",
    "controller.gb28181.cli",
    "controller.kpi.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil-controller",
        description="Vigil city controller: ingest, catalog, fleet, scheduling, sharing.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def configure_logging(level: str | int) -> None:
    """Log to stderr through the agent's redacting filter (vigil_common/redact.py), so no
    credential in a URL reaches a log line, whichever logger wrote it."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_handlers(logging.getLogger())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "log_level", "INFO"))
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
