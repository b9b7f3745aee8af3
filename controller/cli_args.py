"""Arguments every `vigil-controller` command that works on a controller's data shares:
`--config controller.toml` or `--data-dir D` (plus `VIGIL_*` overrides).

Kept apart from the commands, so a domain package's command module (`grants/cli.py`,
`users/cli.py`, ...) reads the configuration without importing `serve` and through it the
whole controller assembly.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.config import ConfigError, ControllerConfig, load_config


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="controller.toml")
    parser.add_argument("--data-dir", type=Path, help="data directory (overrides data_dir)")


def config_from_args(args: argparse.Namespace, listen: str | None = None) -> ControllerConfig:
    """The configuration named by --config / --data-dir (plus VIGIL_* variables)."""
    if args.config is None and args.data_dir is None:
        raise ConfigError("give --config FILE or --data-dir DIR")
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = str(args.data_dir)
    config = load_config(args.config, **overrides)
    if listen:
        data = config.model_dump()
        data["grpc"]["listen"] = listen
        try:
            config = ControllerConfig.model_validate(data)
        except ValueError as exc:
            raise ConfigError(f"--listen: {exc}") from None
    return config


def config_and_engine(args: argparse.Namespace) -> tuple[ControllerConfig, Any]:
    """The configuration and a database engine on its catalog (existing tables only), for
    commands that read the controller's database directly."""
    from controller.catalog import make_engine

    config = config_from_args(args)
    return config, make_engine(config.resolved_database_url(), create=False)
