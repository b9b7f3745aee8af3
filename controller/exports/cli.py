"""`vigil-controller verify-export FILE --public-key evidence.pub`: check an evidence export.

Needs no data dir: a county or a court checks evidence with nothing but the public key.
Exit status: 0 authentic and complete, 1 problems found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from controller.config import ConfigError

log = logging.getLogger("vigil.sharing")


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add verify-export to `vigil-controller`."""
    vex = sub.add_parser("verify-export", help="check an evidence export with the public key")
    vex.add_argument("file", type=Path)
    vex.add_argument("--public-key", type=Path, help="evidence.pub (hex Ed25519 public key)")
    vex.add_argument("--data-dir", type=Path, help="take evidence.pub from <data_dir>/keys")
    vex.add_argument("--json", action="store_true", help="print the report as JSON")
    vex.set_defaults(func=_verify_export)


def _verify_export(args: argparse.Namespace) -> int:
    from controller.exports.bundle import verify_export_file
    from controller.grants.keys import KeyFileError, evidence_public_key

    try:
        public = evidence_public_key(args.public_key, args.data_dir)
    except (KeyFileError, ConfigError) as exc:
        log.error("verify-export: %s", exc)
        return 2
    report = verify_export_file(args.file, public)
    if args.json:
        _out(
            json.dumps(
                {
                    "ok": report.ok,
                    "segments": report.segments,
                    "verified": report.verified,
                    "signature_ok": report.signature_ok,
                    "manifest": report.manifest,
                    "problems": [asdict(p) for p in report.problems],
                },
                ensure_ascii=False,
            )
        )
    else:
        m = report.manifest
        if m:
            _out(
                f"export {m.get('export_id')} camera {m.get('camera_id')} "
                f"grant {m.get('grant_id')} "
                f"watermark {m.get('watermark_id')!r} case {m.get('case_id')!r}"
            )
        _out(
            f"signature: {'valid' if report.signature_ok else 'INVALID'}; "
            f"segments verified: {report.verified}/{report.segments}"
        )
        for p in report.problems:
            _out(f"{p.kind.upper()}: {p.file}: {p.detail}")
        _out("OK: authentic and complete" if report.ok else "FAILED: do not rely on this export")
    return 0 if report.ok else 1
