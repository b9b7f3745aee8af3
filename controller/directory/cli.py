"""`vigil-controller directory`: the camera resource directory from the command line.

    directory load-preset longnan     register and describe the Longnan preset's 17,088
                                      endpoints (demo, benchmark; existing rows kept)
    directory import FILE.csv [--dry-run]   apply a CSV; rejected rows listed with reasons
    directory export [FILE.csv]       every camera's directory row

Works on the controller's database directly (the same --config / --data-dir as `serve`).
Exit status: 0 done (an import with rejected rows is still 0, and lists them), 1 refused,
2 bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.config import ConfigError

log = logging.getLogger("vigil.directory")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `directory` to `vigil-controller`."""
    cmd = sub.add_parser("directory", help="camera resource directory: preset, CSV import/export")
    verbs = cmd.add_subparsers(dest="verb", required=True, metavar="VERB")
    pre = verbs.add_parser("load-preset", help="register and describe a preset city")
    add_config_args(pre)
    pre.add_argument("name", choices=("longnan",))
    pre.set_defaults(func=_preset)
    imp = verbs.add_parser("import", help="apply a CSV to the directory")
    add_config_args(imp)
    imp.add_argument("file", type=Path)
    imp.add_argument("--dry-run", action="store_true", help="judge the rows, change nothing")
    imp.set_defaults(func=_import)
    exp = verbs.add_parser("export", help="write the directory as CSV (stdout without FILE)")
    add_config_args(exp)
    exp.add_argument("file", type=Path, nargs="?")
    exp.set_defaults(func=_export)


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def _run(args: argparse.Namespace, action: Any) -> int:
    from controller.catalog import CatalogError, make_engine
    from controller.clock import SystemClock
    from controller.directory.rows import CsvError
    from controller.directory.store import DirectoryStore

    try:
        config = config_from_args(args)
        engine = make_engine(config.resolved_database_url())
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        return int(action(DirectoryStore(engine, SystemClock())))
    except (CatalogError, CsvError, OSError, UnicodeDecodeError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        engine.dispose()


def _preset(args: argparse.Namespace) -> int:
    from controller.directory.load import load_preset
    from controller.directory.preset import longnan

    def action(store: Any) -> int:
        _out(f"loaded {load_preset(store, longnan())} cameras of the {args.name} preset")
        return 0

    return _run(args, action)


def _import(args: argparse.Namespace) -> int:
    from controller.directory.rows import judge, read_csv
    from controller.directory.scope import Term

    def action(store: Any) -> int:
        rows = read_csv(args.file.read_text(encoding="utf-8"))
        known = {c: frozenset({county}) for c, county in store.counties_of((Term(),)).items()}
        # the CLI runs with the database's own rights: a county column is checked loosely
        rows = [(n, {k: v for k, v in r.items() if k != "county"}) for n, r in rows]
        codes = store.codes_in_use(r.get("gb_code", "").strip() for _, r in rows)
        accepted, rejected = judge(rows, known, codes)
        if not args.dry_run:
            store.apply(accepted)
        for r in rejected:
            _out(f"line {r.line}: {r.camera_id or '-'}: {r.reason}")
        verb = "would apply" if args.dry_run else "applied"
        _out(f"{verb} {len(accepted)} rows, rejected {len(rejected)}")
        return 0

    return _run(args, action)


def _export(args: argparse.Namespace) -> int:
    from controller.directory.rows import write_csv
    from controller.directory.scope import Term
    from controller.directory.store import Filters

    def action(store: Any) -> int:
        rows, offset = [], 0
        while True:
            page, total = store.page((Term(),), Filters(), offset, 500)
            rows += page
            offset += len(page)
            if not page or offset >= total:
                break
        text = write_csv(_row(r) for r in rows)
        if args.file is None:
            sys.stdout.write(text)
        else:
            args.file.write_text(text, encoding="utf-8")
        return 0

    return _run(args, action)


def _row(r: Any) -> dict[str, object]:
    return {
        "camera_id": r.camera_id,
        "name": r.name,
        "county": r.county,
        "township": r.township,
        "village": r.village,
        "lat": r.lat,
        "lon": r.lon,
        "gb_code": r.gb_code,
        "class": r.resource_class,
    }
