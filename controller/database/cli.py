"""`vigil-controller db upgrade` and `db current`: the catalog database's schema by hand.

`serve` migrates an empty database itself but refuses one on an older schema (or created by
a release before migrations): an upgrade of a city's database is the operator's step, taken
after a backup (docs/operations.md). `db upgrade` is idempotent; `db current` changes nothing
and exits 0 only when the database is at the revision this release needs.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("vigil.controller")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `db` (with `upgrade` and `current`) to `vigil-controller`."""
    from controller.cli_args import add_config_args

    db = sub.add_parser("db", help="the catalog database's schema: upgrade, current")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser(
        "upgrade", help="migrate the database to this release's schema (back it up first)"
    )
    add_config_args(upgrade)
    upgrade.set_defaults(func=_upgrade)
    current = actions.add_parser(
        "current", help="show the database's schema revision (exit 1 unless up to date)"
    )
    add_config_args(current)
    current.set_defaults(func=_current)


def _engine(args: argparse.Namespace) -> tuple[Any, str] | None:
    from controller.catalog import make_engine
    from controller.cli_args import config_from_args
    from controller.config import ConfigError
    from controller.redact import redact_url

    try:
        config = config_from_args(args)
        url = config.resolved_database_url()
        return make_engine(url, create=False), redact_url(url)
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return None


def _run(args: argparse.Namespace, action: Callable[[Any], tuple[str, int]]) -> int:
    """Open the configured database, run `action` on its engine, print what it says.

    Both commands fail the same way: 2 for a configuration that names no usable database, 1 for
    a database that cannot be read or migrated (one log line, credentials redacted)."""
    from controller.catalog import CatalogUnavailableError
    from controller.catalog.schema import SchemaError

    opened = _engine(args)
    if opened is None:
        return 2
    engine, shown = opened
    try:
        text, code = action(engine)
    except (SchemaError, CatalogUnavailableError) as exc:
        log.error("database %s: %s", shown, exc)
        return 1
    finally:
        engine.dispose()
    print(f"database {shown}: {text}")  # noqa: T201 - CLI output
    return code


def _upgrade(args: argparse.Namespace) -> int:
    from controller.catalog.db import upgrade_database

    return _run(args, lambda engine: (upgrade_database(engine).describe(), 0))


def _current(args: argparse.Namespace) -> int:
    from controller.catalog.db import schema_state
    from controller.catalog.schema import CURRENT

    def describe(engine: Any) -> tuple[str, int]:
        state = schema_state(engine)
        return state.describe(), 0 if state.kind == CURRENT else 1

    return _run(args, describe)
