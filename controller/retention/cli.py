"""`vigil-controller retention-sweep`, `storage-orphans` and `storage-sweep`: retention by hand.

The running controller sweeps on its own schedule; these commands let an operator preview a
policy change (`--dry-run`), force a sweep after an outage, audit one camera's objects
against its catalog rows, or remove the objects no catalog row names (orphans.py: a dry run
unless `--apply`, which is audited).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

log = logging.getLogger("vigil.retention")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `retention-sweep` and `storage-orphans` to `vigil-controller`."""
    from controller.cli_args import add_config_args

    sweep = sub.add_parser(
        "retention-sweep", help="delete expired cloud copies (objects and catalog rows)"
    )
    add_config_args(sweep)
    sweep.add_argument("--camera", action="append", help="only this camera (repeatable)")
    sweep.add_argument("--batch", type=int, default=500, help="rows per transaction")
    sweep.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    sweep.set_defaults(func=_sweep)
    orphans = sub.add_parser(
        "storage-orphans", help="compare a camera's objects with its catalog rows"
    )
    add_config_args(orphans)
    orphans.add_argument("--camera", action="append", required=True, help="camera id")
    orphans.add_argument(
        "--delete-expired",
        action="store_true",
        help="delete orphan objects past retention and not held (recorded)",
    )
    orphans.set_defaults(func=_orphans)
    stray = sub.add_parser(
        "storage-sweep",
        help="find (--apply: delete, audited) objects no catalog row or upload names",
    )
    add_config_args(stray)
    stray.add_argument("--camera", action="append", help="only this camera (repeatable)")
    stray.add_argument(
        "--grace-s", type=float, default=24 * 3600.0,
        help="leave objects written more recently than this alone (default: a day)",
    )  # fmt: skip
    stray.add_argument("--apply", action="store_true", help="delete them (default: report only)")
    stray.set_defaults(func=_stray)


def _open(args: argparse.Namespace) -> Any:
    # Imported here: SQLAlchemy and boto3 are not needed for `--help`.
    from controller.catalog import Catalog, make_engine
    from controller.cli_args import config_from_args
    from controller.clock import SystemClock
    from controller.config import ConfigError
    from controller.storage import open_store

    try:
        config = config_from_args(args)
        clock = SystemClock()
        catalog = Catalog(make_engine(config.resolved_database_url()), clock)
        store = open_store(config.resolved_storage_url())
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return None
    return catalog, store, clock


def _sweep(args: argparse.Namespace) -> int:
    from controller.retention.sweep import preview_retention, sweep_retention

    if not 1 <= args.batch <= 10_000:
        log.error("--batch must be 1..10000")
        return 2
    opened = _open(args)
    if opened is None:
        return 2
    catalog, store, clock = opened
    if args.dry_run:
        for camera, plan in preview_retention(catalog, clock, args.batch, args.camera).items():
            print(  # noqa: T201 - the command's output
                f"{camera}: would delete {len(plan.delete)}, held {len(plan.held)}, "
                f"chain anchors {len(plan.anchors)}"
            )
        return 0
    report = sweep_retention(catalog, store, clock, args.batch, args.camera)
    print(  # noqa: T201 - the command's output
        f"deleted {len(report.deleted)} segments ({report.deleted_bytes} bytes), "
        f"finished {report.resumed} interrupted, restored {report.restored}, "
        f"kept {report.held} held and {report.anchors} chain anchors"
    )
    for error in report.errors:
        log.error("%s", error)
    return 0 if report.complete else 1


def _orphans(args: argparse.Namespace) -> int:
    from controller.catalog import CatalogError
    from controller.retention.sweep import delete_orphan_objects, find_orphans
    from controller.storage import StorageError

    opened = _open(args)
    if opened is None:
        return 2
    catalog, store, clock = opened
    status = 0
    for camera in args.camera:
        try:
            report = find_orphans(catalog, store, camera)
            for key in report.objects_without_row:
                print(f"{camera}: object without row: {key}")  # noqa: T201
            for segment_id in report.rows_without_object:
                print(f"{camera}: ROW WITHOUT OBJECT (lost data): {segment_id}")  # noqa: T201
                status = 1
            if args.delete_expired:
                for key in delete_orphan_objects(catalog, store, clock, report):
                    print(f"{camera}: deleted orphan {key}")  # noqa: T201
        except (CatalogError, StorageError) as exc:
            log.error("%s: %s", camera, exc)
            status = 1
    return status


def _stray(args: argparse.Namespace) -> int:
    from controller.audit.log import AuditLog
    from controller.catalog.secret_store import SecretStore
    from controller.cli_args import config_from_args
    from controller.grants.keys import KeyFileError, load_keys
    from controller.grants.shared_keys import sync_for_command
    from controller.ingest.ledger import Ledger
    from controller.retention.orphans import sweep_unreferenced

    if args.grace_s < 0:
        log.error("--grace-s must be >= 0")
        return 2
    opened = _open(args)
    if opened is None:
        return 2
    catalog, store, clock = opened
    audit = None
    if args.apply:
        config = config_from_args(args)
        for line in sync_for_command(SecretStore(catalog.engine), config, clock.now_us()).lines():
            log.info("%s", line)  # the city's keys, as `serve` would take them
        try:
            evidence = load_keys(config.data_path).evidence
        except KeyFileError as exc:  # an applied sweep is audited, or does not run
            log.error("%s", exc)
            return 2
        audit = AuditLog(catalog.engine, clock, evidence).append
    report = sweep_unreferenced(
        catalog, Ledger(catalog.engine), store, clock.now_us(), args.grace_s,
        apply=args.apply, audit=audit, cameras=args.camera,
    )  # fmt: skip
    for line in report.lines():
        print(line)  # noqa: T201 - the command's output
    return 1 if report.errors or report.raced else 0
