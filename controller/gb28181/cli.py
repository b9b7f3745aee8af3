"""`vigil-controller gb28181`: GB/T 28181 devices that register to Vigil.

    gb28181 issue CODE --county C --site S   a new password for device CODE (printed once;
                                             an earlier one stops working)
    gb28181 revoke CODE                      refuse the device from now on

The installer types Vigil's server id (`[gb28181] server_id`), realm, address and this
password into the NVR's GB/T 28181 page. Works on the controller's database directly (the
same --config / --data-dir as `serve`). Exit status: 0 done, 1 refused, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.config import ConfigError

log = logging.getLogger("vigil.gb28181")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `gb28181` to `vigil-controller`."""
    cmd = sub.add_parser("gb28181", help="GB/T 28181 devices: issue and revoke passwords")
    verbs = cmd.add_subparsers(dest="verb", required=True, metavar="VERB")
    issue = verbs.add_parser("issue", help="issue a device its SIP password")
    add_config_args(issue)
    issue.add_argument("code", help="the device's 20-digit GB/T 28181 code")
    issue.add_argument("--county", required=True)
    issue.add_argument("--site", required=True)
    issue.set_defaults(func=_issue)
    revoke = verbs.add_parser("revoke", help="refuse a device from now on")
    add_config_args(revoke)
    revoke.add_argument("code")
    revoke.set_defaults(func=_revoke)


def _run(args: argparse.Namespace, action: Any) -> int:
    from controller.catalog import CatalogError, make_engine
    from controller.clock import SystemClock
    from controller.gb28181.devstore import GbDeviceStore

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if not config.gb28181.server_id:
        log.error("[gb28181] server_id is not set: devices cannot register to this controller")
        return 2
    try:
        engine = make_engine(config.resolved_database_url())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        store = GbDeviceStore(engine, SystemClock())
        return int(action(store, config.gb28181.device_realm))
    except (CatalogError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        engine.dispose()


def _issue(args: argparse.Namespace) -> int:
    def action(store: Any, realm: str) -> int:
        password = store.issue(args.code, args.county, args.site, realm)
        print(f"device {args.code}: password {password} (realm {realm})")  # noqa: T201
        return 0

    return _run(args, action)


def _revoke(args: argparse.Namespace) -> int:
    def action(store: Any, _realm: str) -> int:
        if not store.revoke(args.code):
            log.error("device %s is not known", args.code)
            return 1
        return 0

    return _run(args, action)
