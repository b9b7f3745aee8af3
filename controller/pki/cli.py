"""`vigil-controller init` and `vigil-controller issue-cert`: the PKI from the command line."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from controller.clock import SystemClock
from controller.pki.certs import PkiError, issue_device_cert, utc_from_us
from controller.pki.store import init_pki, load_ca, write_device_files

log = logging.getLogger("vigil.pki")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `init` and `issue-cert` to `vigil-controller`."""
    init = sub.add_parser(
        "init",
        help="create the city CA and the controller's server certificate in the data dir",
        description="Idempotent: an existing CA is kept (use --force to replace it, which "
        "invalidates every issued device certificate).",
    )
    init.add_argument("--data-dir", type=Path, required=True)
    init.add_argument(
        "--hostname",
        action="append",
        default=[],
        help="extra name or IP for the server certificate (127.0.0.1 and localhost are always in)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_init)

    issue = sub.add_parser(
        "issue-cert",
        help="issue a device client certificate (CN = device id) signed by the city CA",
    )
    issue.add_argument("--data-dir", type=Path, required=True)
    issue.add_argument("--device-id", required=True)
    issue.add_argument("--out", type=Path, required=True, help="directory for the files")
    issue.add_argument("--days", type=int, default=365)
    issue.set_defaults(func=_issue)


def _init(args: argparse.Namespace) -> int:
    now = utc_from_us(SystemClock().now_us())
    try:
        result = init_pki(args.data_dir, args.hostname, now, force=args.force)
    except (PkiError, OSError) as exc:
        log.error("init failed: %s", exc)
        return 1
    from controller.grants.keys import KeyFileError, ensure_keys

    try:
        created = ensure_keys(args.data_dir)
    except (KeyFileError, OSError) as exc:
        log.error("init failed creating the sharing keys: %s", exc)
        return 1
    what = "created a new CA" if result.ca_created else "kept the existing CA"
    cert = "issued a server certificate" if result.server_cert_issued else "server certificate ok"
    keys = f"; created sharing keys {', '.join(created)}" if created else ""
    print(f"{result.paths.root}: {what}; {cert}{keys}")  # noqa: T201 - CLI output
    return 0


def _issue(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= 3650:
        log.error("--days must be between 1 and 3650")
        return 2
    now = utc_from_us(SystemClock().now_us())
    try:
        ca = load_ca(args.data_dir)
        pair = issue_device_cert(ca, args.device_id, now, days=args.days)
        files = write_device_files(args.out, args.device_id, pair, ca.cert_pem)
    except (PkiError, OSError) as exc:
        log.error("issue-cert failed: %s", exc)
        return 1
    print(f"{files.cert}\n{files.key}\n{files.ca_cert}")  # noqa: T201 - CLI output
    return 0
