"""`vigil-controller user add|list|disable`: accounts of the control-centre console and API.

The password is read from a file or standard input, never from the command line (it would
land in shell history and `ps`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from controller.config import ConfigError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from controller.cli_args import add_config_args

    user = sub.add_parser("user", help="console and API accounts")
    verbs = user.add_subparsers(dest="verb", required=True, metavar="VERB")
    add = verbs.add_parser("add", help="create an account")
    add_config_args(add)
    add.add_argument("--user-id", required=True)
    add.add_argument("--org", required=True, help="organisation id, e.g. city, zongzhi, gongan")
    add.add_argument("--role", required=True, choices=["admin", "operator", "viewer", "installer"])
    add.add_argument(
        "--password-file", required=True, help="file with the password, or - for stdin"
    )
    add.add_argument("--name", default="", help="display name")
    add.set_defaults(func=_add)
    lst = verbs.add_parser("list", help="list accounts")
    add_config_args(lst)
    lst.set_defaults(func=_list)


def _read_password(source: str) -> str:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return text.splitlines()[0] if text else ""


def _add(args: argparse.Namespace) -> int:
    from controller.catalog import make_engine
    from controller.cli_args import config_from_args
    from controller.clock import SystemClock
    from controller.grants.policy import default_policy
    from controller.users.store import UserError, create_user

    try:
        config = config_from_args(args)
        password = _read_password(args.password_file)
        engine = make_engine(config.resolved_database_url())
        row = create_user(
            engine,
            SystemClock(),
            args.user_id,
            args.org,
            args.role,
            password,
            display_name=args.name,
            policy=default_policy(),
        )
    except (ConfigError, UserError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"user add: {exc}\n")
        return 2
    sys.stdout.write(f"created {row.user_id} ({row.org_id}, {row.role})\n")
    return 0


def _list(args: argparse.Namespace) -> int:
    from controller.catalog import make_engine
    from controller.cli_args import config_from_args
    from controller.clock import SystemClock
    from controller.users.store import UserStore

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        sys.stderr.write(f"user list: {exc}\n")
        return 2
    store = UserStore(make_engine(config.resolved_database_url()), SystemClock())
    for row in store.list():
        sys.stdout.write(f"{row.user_id}\t{row.org_id}\t{row.role}\n")
    return 0
