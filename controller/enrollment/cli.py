"""`vigil-controller device token|retire|replace`: enrollment by hand, on a controller host.

    vigil-controller device token --config C --device-id D [--ttl-s 86400] [--out F]
    vigil-controller device retire --config C --device-id D [--reason TEXT]
    vigil-controller device replace --config C OLD NEW [--ttl-s S] [--out F]

`token` prints (or writes 0600 to --out) a single-use enrollment token for a registered
device; only its hash is stored. `retire` revokes every certificate of the device at once
(every replica refuses it within `enrollment.revocation_refresh_s`) and removes its MQTT
account. `replace` retires OLD and gives NEW (a new device id on the same site, taking over
OLD's cameras, whose history stays theirs) a token.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.clock import SystemClock
from controller.config import ConfigError

log = logging.getLogger("vigil.enrollment")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    dev = sub.add_parser("device", help="enrollment tokens, retiring and replacing devices")
    dsub = dev.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    tok = dsub.add_parser("token", help="a single-use enrollment token for a registered device")
    add_config_args(tok)
    tok.add_argument("--device-id", required=True)
    tok.add_argument("--ttl-s", type=float, help="lifetime (default enrollment.token_ttl_s)")
    tok.add_argument("--out", type=Path, help="write the token to this file (0600)")
    tok.set_defaults(func=_token)
    ret = dsub.add_parser("retire", help="revoke the device's certificates now")
    add_config_args(ret)
    ret.add_argument("--device-id", required=True)
    ret.add_argument("--reason", default="retired")
    ret.set_defaults(func=_retire)
    rep = dsub.add_parser("replace", help="retire OLD; NEW takes its cameras and gets a token")
    add_config_args(rep)
    rep.add_argument("old")
    rep.add_argument("new")
    rep.add_argument("--ttl-s", type=float)
    rep.add_argument("--out", type=Path)
    rep.set_defaults(func=_replace)


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _run(args: argparse.Namespace, action: str) -> int:
    from controller.catalog import Catalog, CatalogError, make_engine
    from controller.enrollment.operations import OperationError, Operations

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        engine = make_engine(config.resolved_database_url())
    except Exception as exc:
        log.error("cannot open the catalog: %s", exc)
        return 1
    clock = SystemClock()
    ops = Operations.for_config(config, Catalog(engine, clock), clock)
    ttl = getattr(args, "ttl_s", None) or config.enrollment.token_ttl_s
    try:
        if action == "token":
            issued = ops.token(args.device_id, "controller-cli", ttl)
        elif action == "retire":
            count = ops.retire(args.device_id, args.reason)
            sys.stdout.write(f"{args.device_id} retired: {count} certificate(s) revoked\n")
            return 0
        else:
            issued = ops.replace(args.old, args.new, "controller-cli", ttl)
    except (OperationError, CatalogError) as exc:
        log.error("device %s: %s", action, exc)
        return 1
    finally:
        engine.dispose()
    if args.out is not None:
        write_secret(args.out, issued.token)
        sys.stdout.write(f"token for {issued.device_id} written to {args.out}\n")
    else:
        sys.stdout.write(issued.token + "\n")
    return 0


def _token(args: argparse.Namespace) -> int:
    return _run(args, "token")


def _retire(args: argparse.Namespace) -> int:
    return _run(args, "retire")


def _replace(args: argparse.Namespace) -> int:
    return _run(args, "replace")
