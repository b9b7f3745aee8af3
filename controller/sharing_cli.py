"""Sharing from the command line: keys, grants, revocations, and the two evidence checks.

    vigil-controller keys --data-dir D                 create the sharing keys (idempotent)
    vigil-controller verify-export FILE --public-key evidence.pub
    vigil-controller verify-audit --data-dir D [--witness F | --witness-broker H:P ...]
                                  [--save-anchor F]
    vigil-controller audit-search --data-dir D [--user U] [--camera C] [--case K] [--since T]
    vigil-controller grant keygen|mint|delegate|inspect|revoke|revocations ...

`verify-export` and `grant inspect` need no data dir: a county or a court checks evidence and
grants with nothing but public keys. Exit status: 0 good, 1 problems found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.config import ConfigError
from controller.fleet.witness_cli import add_witness_args
from controller.grants.cli import parse_time_us, register_grant

log = logging.getLogger("vigil.sharing")


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add keys, verify-export, verify-audit, audit-search and grant to `vigil-controller`."""
    keys = sub.add_parser("keys", help="create the sharing keys in <data_dir>/keys (idempotent)")
    keys.add_argument("--data-dir", type=Path, required=True)
    keys.set_defaults(func=_keys)

    vex = sub.add_parser("verify-export", help="check an evidence export with the public key")
    vex.add_argument("file", type=Path)
    vex.add_argument("--public-key", type=Path, help="evidence.pub (hex Ed25519 public key)")
    vex.add_argument("--data-dir", type=Path, help="take evidence.pub from <data_dir>/keys")
    vex.add_argument("--json", action="store_true", help="print the report as JSON")
    vex.set_defaults(func=_verify_export)

    vau = sub.add_parser("verify-audit", help="check the audit log's hash chain and checkpoints")
    add_config_args(vau)
    vau.add_argument("--public-key", type=Path, help="evidence.pub (default: in the data dir)")
    add_witness_args(vau)  # --witness/--anchor FILE, --witness-broker HOST:PORT
    vau.add_argument("--save-anchor", type=Path, help="save the newest checkpoint to this file")
    vau.set_defaults(func=_verify_audit)

    srch = sub.add_parser("audit-search", help="search the audit log (newest first)")
    add_config_args(srch)
    for name in ("user", "camera", "case", "grant", "action"):
        srch.add_argument(f"--{name}")
    srch.add_argument("--since", type=parse_time_us, help="ISO 8601 time or unix microseconds")
    srch.add_argument("--until", type=parse_time_us)
    srch.add_argument("--limit", type=int, default=100)
    srch.set_defaults(func=_audit_search)

    register_grant(sub)


def _keys(args: argparse.Namespace) -> int:
    from controller.grants.keys import KeyFileError, ensure_keys, keys_dir, load_keys

    try:
        created = ensure_keys(args.data_dir)
        keys = load_keys(args.data_dir)
    except (KeyFileError, OSError) as exc:
        log.error("keys: %s", exc)
        return 1
    from controller.grants.codec import key_id

    _out(f"{keys_dir(args.data_dir)}: created {', '.join(created) or 'nothing (all present)'}")
    _out(f"grant root key id {key_id(keys.root_public)}: {keys.root_public.hex()}")
    _out(f"evidence key id {key_id(keys.evidence_public)}: {keys.evidence_public.hex()}")
    return 0


def _public_key(path: Path | None, data_dir: Path | None) -> bytes:
    from controller.grants.keys import EVIDENCE, keys_dir, load_public_hex

    if path is None:
        if data_dir is None:
            raise ConfigError("give --public-key FILE (or --data-dir DIR)")
        path = keys_dir(data_dir) / f"{EVIDENCE}.pub"
    return load_public_hex(path)


def _verify_export(args: argparse.Namespace) -> int:
    from controller.exports.bundle import verify_export_file
    from controller.grants.keys import KeyFileError

    try:
        public = _public_key(args.public_key, args.data_dir)
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


def _engine(args: argparse.Namespace) -> Any:
    from controller.catalog import make_engine

    config = config_from_args(args)
    return config, make_engine(config.resolved_database_url(), create=False)


def _verify_audit(args: argparse.Namespace) -> int:
    from controller.audit.chain import verify_log
    from controller.audit.log import AuditError, iter_entries, read_checkpoints
    from controller.fleet.witness_cli import WitnessFetchError, load_witness
    from controller.grants.keys import KeyFileError

    try:
        config, engine = _engine(args)
        public = _public_key(args.public_key, config.data_path)
        anchor = load_witness(args)
    except (ConfigError, KeyFileError, ValueError, TypeError, OSError) as exc:
        log.error("verify-audit: %s", exc)
        return 2
    except WitnessFetchError as exc:
        log.error("verify-audit: %s", exc)
        return 1
    if anchor is not None:
        _out(f"witness: checkpoint at entry {anchor.seq}, signed {anchor.at_us} us, {anchor.hash}")
    try:
        checkpoints = read_checkpoints(engine)
        report = verify_log(iter_entries(engine), checkpoints, public, anchor)
    except AuditError as exc:
        log.error("verify-audit: %s", exc)
        return 1
    _out(
        f"entries: {report.entries} (last {report.last_seq}); checkpoints: {report.checkpoints}; "
        f"covered by a signature up to {report.covered_seq}; not yet covered: {report.uncovered}"
    )
    for problem in report.problems:
        _out(f"PROBLEM: {problem}")
    if report.ok and args.save_anchor is not None and checkpoints:
        args.save_anchor.write_text(json.dumps(asdict(checkpoints[-1])) + "\n", encoding="utf-8")
    _out("OK: the audit log is intact" if report.ok else "FAILED: the audit log was tampered with")
    return 0 if report.ok else 1


def _audit_search(args: argparse.Namespace) -> int:
    from controller.audit.log import AuditError, search

    try:
        _config, engine = _engine(args)
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
