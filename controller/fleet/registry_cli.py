"""`vigil-controller register-device`: put a device and its cameras into the catalog.

Until enrollment (AgentControl.Enroll) lands this is how a device becomes known: ingest
accepts a camera only from the device it is registered to.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.clock import SystemClock
from controller.config import ConfigError
from controller.ingest.rules import CAMERA_ID_RE
from controller.pki.certs import PkiError, validate_device_id

log = logging.getLogger("vigil.registry")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `register-device` to `vigil-controller`."""
    reg = sub.add_parser("register-device", help="register a device and its cameras in the catalog")
    add_config_args(reg)
    reg.add_argument("--device-id", required=True)
    reg.add_argument("--county", required=True)
    reg.add_argument("--site", required=True)
    reg.add_argument("--kind", choices=("nvr", "handheld"), default="nvr")
    reg.add_argument("--camera", action="append", default=[], help="camera id (repeat for several)")
    reg.add_argument("--retention-days", type=int, default=30)
    reg.set_defaults(func=_register)


def _register(args: argparse.Namespace) -> int:
    # Imported here: the catalog pulls in SQLAlchemy, which `--help` should not pay for.
    from controller.catalog import Catalog, CatalogError, make_engine

    try:
        config = config_from_args(args)
        validate_device_id(args.device_id)
        for camera in args.camera:
            if not CAMERA_ID_RE.fullmatch(camera):
                raise ConfigError(f"invalid camera id {camera!r}: 1-64 of A-Z a-z 0-9 _ . -")
    except (ConfigError, PkiError) as exc:
        log.error("%s", exc)
        return 2
    try:
        engine = make_engine(config.resolved_database_url())
    except Exception as exc:
        log.error("cannot open the catalog: %s", exc)
        return 1
    try:
        catalog = Catalog(engine, SystemClock())
        catalog.upsert_device(args.device_id, args.county, args.site, args.kind)
        for camera in args.camera:
            catalog.upsert_camera(camera, args.device_id, retention_days=args.retention_days)
    except CatalogError as exc:
        log.error("register-device failed: %s", exc)
        return 1
    finally:
        engine.dispose()
    cams = ", ".join(args.camera) or "no cameras"
    print(f"registered {args.device_id} ({args.county}/{args.site}): {cams}")  # noqa: T201
    return 0
