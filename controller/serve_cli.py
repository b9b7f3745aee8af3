"""`vigil-controller serve`: run the controller (ingest over mutual-TLS gRPC, and the rest).

`--config controller.toml`, or just `--data-dir D` for the embedded defaults (SQLite and a
local object store in D, gRPC on 127.0.0.1:7443 with the PKI `vigil-controller init` made).
`--check-config` validates everything that can be checked without serving, then exits.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.config import ConfigError, ControllerConfig
from vigil_common.jsonlog import use_format

log = logging.getLogger("vigil.controller")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `serve` to `vigil-controller`."""
    serve = sub.add_parser("serve", help="run the controller until SIGTERM")
    add_config_args(serve)
    serve.add_argument("--listen", help="gRPC HOST:PORT (overrides grpc.listen)")
    serve.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    serve.set_defaults(func=_serve)


def check_config(config: ControllerConfig) -> list[str]:
    """Problems that would stop `serve`, found without opening a port or a database."""
    from controller.catalog import normalize_url
    from controller.components import load_tls
    from controller.runtime import StartupError
    from controller.storage import parse_store_url

    problems: list[str] = []
    try:
        load_tls(config)
    except StartupError as exc:
        problems.append(str(exc))
    try:
        normalize_url(config.resolved_database_url())
    except ValueError as exc:
        problems.append(f"database_url: {exc}")
    try:
        parse_store_url(config.resolved_storage_url(), {})
    except ValueError as exc:
        problems.append(f"storage_url: {exc}")
    return problems


def _serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args, args.listen)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    logging.getLogger().setLevel(config.log_level)
    use_format(logging.getLogger(), config.log_format)
    if args.check_config:
        problems = check_config(config)
        for problem in problems:
            log.error("%s", problem)
        if problems:
            return 2
        print(f"configuration ok: {config.describe()}")  # noqa: T201 - CLI output
        return 0
    from controller.assembly import main

    return main(config)
