"""`vigil-controller audit-search`: search the audit log, newest first.

    vigil-controller audit-search --data-dir D [--user U] [--camera C] [--case K] [--since T]

Times: ISO 8601 or unix microseconds; without a zone, Asia/Shanghai local time
(controller/times.py). Exit status: 0 done, 1 the log cannot be read, 2 bad usage.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from typing import Any

from controller import times
from controller.cli_args import add_config_args, config_and_engine
from controller.config import ConfigError

log = logging.getLogger("vigil.sharing")


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def _time(text: str) -> int:
    try:
        return times.parse_time_us(text, naive=times.LOCAL_ZONE)
    except times.TimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add audit-search to `vigil-controller`."""
    srch = sub.add_parser("audit-search", help="search the audit log (newest first)")
    add_config_args(srch)
    for name in ("user", "camera", "case", "grant", "action"):
        srch.add_argument(f"--{name}")
    srch.add_argument("--since", type=_time, help="ISO 8601 time or unix microseconds")
    srch.add_argument("--until", type=_time)
    srch.add_argument("--limit", type=int, default=100)
    srch.set_defaults(func=_audit_search)


def _audit_search(args: argparse.Namespace) -> int:
    from controller.audit.log import AuditError, search

    try:
        _config, engine = config_and_engine(args)
        found = search(
            engine,
            user=args.user,
            camera=args.camera,
            case=args.case,
            grant=args.grant,
            action=args.action,
            since_us=args.since,
            until_us=args.until,
            limit=args.limit,
        )
    except (ConfigError, ValueError) as exc:
        log.error("audit-search: %s", exc)
        return 2
    except AuditError as exc:
        log.error("audit-search: %s", exc)
        return 1
    for e in found:
        when = datetime.fromtimestamp(e.at_us / 1e6, UTC).isoformat(timespec="seconds")
        _out(
            f"{e.seq}\t{when}\t{e.action}\t{e.outcome}\t{e.actor_org}/{e.actor_user}\t"
            f"camera={e.camera_id}\tcase={e.case_id}\tgrant={e.grant_id}\t{e.reason}\t{e.detail}"
        )
    return 0
