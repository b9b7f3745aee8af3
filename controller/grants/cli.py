"""`vigil-controller grant ...`: keys for sub-platforms, minting, offline delegation,
inspection, revocation and the signed revocation list.

`keygen`, `delegate` and `inspect` work anywhere with files only (a county delegating to an
officer needs its own key and its token, nothing from the city); `mint`, `revoke` and
`revocations` act on a controller's data dir and are audited there.
"""

from __future__ import annotations

import argparse
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller import times
from controller.clock import SystemClock
from controller.config import ConfigError
from controller.grants.errors import GrantRefused
from controller.grants.keys import KeyFileError
from controller.grants.model import GrantBody, Operation

log = logging.getLogger("vigil.grants")


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def parse_time_us(text: str) -> int:
    """ISO 8601 (a 'Z' or offset; without one, Asia/Shanghai local time) or integer
    microseconds (controller/times.py)."""
    try:
        return times.parse_time_us(text, naive=times.LOCAL_ZONE)
    except times.TimeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ops(text: str) -> frozenset[Operation]:
    try:
        return frozenset(Operation(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            "operations: comma-separated live,playback,download"
        ) from None


def _add_request_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--holder-org", required=True)
    p.add_argument("--holder-user", default="")
    p.add_argument("--holder-key", type=Path, help="hex public key file: makes it delegable")
    p.add_argument("--camera", action="append", default=[], help="camera id (repeatable)")
    p.add_argument("--area", action="append", default=[], help="area prefix (repeatable)")
    p.add_argument("--class", dest="classes", action="append", default=[], help="II or III")
    p.add_argument("--ops", type=_ops, required=True, help="live,playback,download")
    p.add_argument("--from", dest="from_us", type=parse_time_us, required=True)
    p.add_argument("--to", dest="to_us", type=parse_time_us, required=True)
    p.add_argument("--purpose", required=True)
    p.add_argument("--case", default="")
    p.add_argument("--watermark", default="")
    p.add_argument("--lifetime-s", type=int)
    p.add_argument("--downloads", type=int, help="download limit (default 1)")
    p.add_argument("--out", type=Path, help="write the token here (default: print it)")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `keys` and `grant` to `vigil-controller`."""
    keys = sub.add_parser(
        "keys",
        help="create the sharing keys in <data_dir>/keys (idempotent); with --config, take "
        "the city's from its database (or publish these if it has none), as serve does",
    )
    keys.add_argument("--data-dir", type=Path, help="data directory (overrides data_dir)")
    keys.add_argument("--config", type=Path, help="controller.toml: share through its database")
    keys.set_defaults(func=_keys)
    register_grant(sub)


def _keys(args: argparse.Namespace) -> int:
    from controller.catalog import make_engine
    from controller.catalog.schema import SchemaError
    from controller.catalog.secret_store import SecretStore
    from controller.cli_args import config_from_args
    from controller.grants.keys import KeyFileError, ensure_keys, keys_dir, load_keys
    from controller.grants.shared_keys import sync_for_command

    shared: list[str] = []
    try:
        config = config_from_args(args)
        data_dir = config.data_path
        created = ensure_keys(data_dir)
        if args.config is not None:  # the city's database: its keys win (module shared_keys)
            engine = make_engine(config.resolved_database_url())
            try:
                now = SystemClock().now_us()
                shared = sync_for_command(SecretStore(engine), config, now).lines()
            finally:
                engine.dispose()
        keys = load_keys(data_dir)
    except (ConfigError, KeyFileError, OSError, ValueError, SchemaError) as exc:
        log.error("keys: %s", exc)
        return 1
    from controller.grants.codec import key_id

    for line in shared:
        _out(line)
    _out(f"{keys_dir(data_dir)}: created {', '.join(created) or 'nothing (all present)'}")
    if args.config is None:
        _out("local keys only: `serve` (or `keys --config`) shares them through the database")
    _out(f"grant root key id {key_id(keys.root_public)}: {keys.root_public.hex()}")
    _out(f"evidence key id {key_id(keys.evidence_public)}: {keys.evidence_public.hex()}")
    return 0


def register_grant(sub: argparse._SubParsersAction[Any]) -> None:
    from controller.cli_args import add_config_args

    grant = sub.add_parser("grant", help="mint, delegate, inspect and revoke share grants")
    gsub = grant.add_subparsers(dest="grant_command", required=True, metavar="ACTION")

    keygen = gsub.add_parser("keygen", help="an Ed25519 key pair for a holder (NAME.key/.pub)")
    keygen.add_argument("--out", type=Path, required=True, help="directory")
    keygen.add_argument("--name", required=True)
    keygen.set_defaults(func=_keygen)

    mint = gsub.add_parser("mint", help="mint a root grant (as a city admin), audited")
    add_config_args(mint)
    mint.add_argument("--as-user", required=True, help="the admin doing this (for the audit)")
    _add_request_args(mint)
    mint.set_defaults(func=_mint)

    dele = gsub.add_parser("delegate", help="issue a narrower child grant offline")
    dele.add_argument("--parent", type=Path, required=True, help="the holder's token file")
    dele.add_argument("--key", type=Path, required=True, help="the holder's private key (PEM)")
    _add_request_args(dele)
    dele.set_defaults(func=_delegate)

    insp = gsub.add_parser("inspect", help="show a token; verify it with --root-key")
    insp.add_argument("token", type=Path)
    insp.add_argument("--root-key", type=Path, help="grant_root.pub of the city")
    insp.add_argument(
        "--revocations", type=Path, help="a signed revocation list (from `grant revocations`)"
    )
    insp.set_defaults(func=_inspect)

    rev = gsub.add_parser("revoke", help="revoke a grant and everything below it, audited")
    add_config_args(rev)
    rev.add_argument("--grant-id", required=True)
    rev.add_argument("--as-user", required=True)
    rev.add_argument("--reason", required=True)
    rev.set_defaults(func=_revoke)

    rl = gsub.add_parser("revocations", help="write the signed revocation list")
    add_config_args(rl)
    rl.add_argument("--out", type=Path, required=True)
    rl.set_defaults(func=_revocations)


def _request(args: argparse.Namespace) -> Any:
    from controller.grants.keys import load_public_hex
    from controller.grants.mint import GrantRequest

    return GrantRequest(
        holder_org=args.holder_org,
        holder_user=args.holder_user,
        holder_public_key=load_public_hex(args.holder_key) if args.holder_key else b"",
        operations=args.ops,
        footage_from_us=args.from_us,
        footage_to_us=args.to_us,
        purpose=args.purpose,
        camera_ids=frozenset(args.camera),
        area_prefixes=tuple(args.area),
        resource_classes=frozenset(args.classes),
        case_id=args.case,
        watermark_id=args.watermark,
        lifetime_us=None if args.lifetime_s is None else args.lifetime_s * 1_000_000,
        download_limit=args.downloads,
    )


def _emit(token: str, out: Path | None) -> None:
    if out is None:
        _out(token)
    else:
        from controller.files import write_atomic

        write_atomic(out, (token + "\n").encode("ascii"), mode=0o600)
        _out(f"wrote {out}")


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from controller.grants.keys import write_keypair

    if (args.out / f"{args.name}.key").exists():
        log.error("keygen: %s already exists; refusing to replace a key", args.out / args.name)
        return 1
    write_keypair(args.out, args.name, Ed25519PrivateKey.generate())
    _out(f"{args.out / args.name}.key (private, 0600)\n{args.out / args.name}.pub")
    return 0


def _service(args: argparse.Namespace) -> Any:
    from controller.audit.log import AuditLog
    from controller.catalog import make_engine
    from controller.catalog.secret_store import SecretStore
    from controller.cli_args import config_from_args
    from controller.grants.keys import load_keys
    from controller.grants.policy import default_policy
    from controller.grants.service import GrantService
    from controller.grants.shared_keys import sync_for_command

    config = config_from_args(args)
    engine = make_engine(config.resolved_database_url())
    clock = SystemClock()
    for line in sync_for_command(SecretStore(engine), config, clock.now_us()).lines():
        log.info("%s", line)  # the city's keys, as `serve` would take them
    keys = load_keys(config.data_path)
    audit = AuditLog(engine, clock, keys.evidence)
    return GrantService(engine, clock, keys, default_policy(), audit)


def _cameras(service: Any, camera_ids: list[str]) -> dict[str, Any]:
    """CameraInfo of each named camera that the catalog knows (area from county and site)."""
    from controller.catalog import Catalog
    from controller.grants.policy import camera_info

    catalog = Catalog(service.store.engine, SystemClock())
    found = {}
    for cam_id in camera_ids:
        row = catalog.camera(cam_id)
        if row is not None:
            found[cam_id] = camera_info(
                service.policy, cam_id, row.county, row.site, row.resource_class
            )
    return found


def _mint(args: argparse.Namespace) -> int:
    from controller.grants.policy import Role, User

    try:
        service = _service(args)
        admin = User(args.as_user, service.policy.city_org, Role.ADMIN)
        token = service.mint(admin, _request(args), _cameras(service, args.camera))
    except (ConfigError, KeyFileError, GrantRefused, ValueError) as exc:
        log.error("grant mint: %s", exc)
        return 1
    _emit(token, args.out)
    return 0


def _delegate(args: argparse.Namespace) -> int:
    from controller.grants.codec import decode_token, encode_token, sign_grant
    from controller.grants.keys import load_private
    from controller.grants.mint import plan_child_grant
    from controller.grants.policy import default_policy

    try:
        chain = decode_token(args.parent.read_text(encoding="ascii"))
        key = load_private(args.key)
        body = plan_child_grant(
            chain.leaf,
            _request(args),
            SystemClock().now_us(),
            secrets.token_hex(16),
            default_policy(),
        )
        link = sign_grant(body, key)
    except (OSError, UnicodeDecodeError, KeyFileError, GrantRefused, ValueError) as exc:
        log.error("grant delegate: %s", exc)
        return 1
    _emit(encode_token([*chain.links, link]), args.out)
    return 0


def _when(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")


def _describe(body: GrantBody) -> str:
    scope = sorted(body.camera_ids) + [f"{p}/*" for p in body.area_prefixes]
    return (
        f"grant {body.grant_id} (parent {body.parent_id or '-'}) {body.issuer_org} -> "
        f"{body.holder_org}{'/' + body.holder_user if body.holder_user else ''}\n"
        f"  scope {scope} classes {sorted(body.resource_classes) or 'any'}\n"
        f"  footage {_when(body.footage_from_us)} .. {_when(body.footage_to_us)}\n"
        f"  ops {sorted(op.value for op in body.operations)} valid {_when(body.not_before_us)}"
        f" .. {_when(body.expires_us)} downloads {body.download_limit or 'unlimited'}\n"
        f"  purpose {body.purpose!r} case {body.case_id!r} watermark {body.watermark_id!r}"
        f"{' delegable' if body.delegable else ''}"
    )


def _inspect(args: argparse.Namespace) -> int:
    from controller.grants.chain import verify_chain
    from controller.grants.codec import anchors_from, decode_token
    from controller.grants.keys import load_public_hex
    from controller.grants.revocation import accept_revocation_list, verify_with_list

    try:
        chain = decode_token(args.token.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, GrantRefused) as exc:
        log.error("grant inspect: %s", exc)
        return 1
    for link in chain.links:
        _out(_describe(link.body))
    if args.root_key is None:
        _out("signatures not checked (give --root-key)")
        return 0
    now = SystemClock().now_us()
    try:
        anchors = anchors_from([load_public_hex(args.root_key)])
        if args.revocations is None:
            verify_chain(chain, anchors, now, ())
        else:
            view = accept_revocation_list(args.revocations.read_bytes(), anchors, None, now)
            verify_with_list(chain, anchors, view, now)
    except (KeyFileError, GrantRefused, OSError) as exc:
        _out(f"INVALID: {exc}")
        return 1
    checked = "revocation list checked" if args.revocations else "revocation NOT checked"
    _out(f"VALID now (signatures, delegation, time; {checked})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from controller.grants.policy import Role, User

    try:
        service = _service(args)
        admin = User(args.as_user, service.policy.city_org, Role.ADMIN)
        seq = service.revoke(args.grant_id, admin, args.reason)
    except (ConfigError, KeyFileError, GrantRefused) as exc:
        log.error("grant revoke: %s", exc)
        return 1
    _out(f"revoked {args.grant_id}; revocation list sequence {seq}")
    return 0


def _revocations(args: argparse.Namespace) -> int:
    from controller.files import write_atomic

    try:
        data = _service(args).revocation_list()
        write_atomic(args.out, data)
    except (ConfigError, KeyFileError, OSError) as exc:
        log.error("grant revocations: %s", exc)
        return 1
    _out(f"wrote {args.out}")
    return 0
