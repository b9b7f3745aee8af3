"""`verify-audit`'s witness options: a saved checkpoint file, or the retained one on the broker.

    vigil-controller verify-audit --data-dir D --witness F
        F: a checkpoint saved from the witness topic, a `--save-anchor` file, or an export's
        manifest.json (its `audit_checkpoint`)
    vigil-controller verify-audit --data-dir D --witness-broker HOST:PORT \\
        --mqtt-username vigil-op-NAME --mqtt-password-file F [--mqtt-ca-cert CA]

Fetching from the broker is only as good as the broker's copy: keep a copy of your own too
(the point of a witness is that the controller's database is not the only place it lives).
Here, beside the fleet's MQTT adapter it fetches through, because `audit` never imports
`fleet` (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from controller.audit.chain import Checkpoint
from controller.audit.witness import AUDIT_WITNESS_TOPIC, WitnessError, parse_witness
from controller.cli_args import add_config_args, config_and_engine
from controller.config import ConfigError
from controller.fleet.broker import is_controller_account

log = logging.getLogger("vigil.sharing")

FETCH_TIMEOUT_S = 10.0
MAX_PAYLOAD_BYTES = 64 * 1024


class WitnessFetchError(Exception):
    """The broker's witness could not be fetched; the message says why."""


def add_witness_args(parser: argparse.ArgumentParser) -> None:
    """Add --witness (alias --anchor) and the --witness-broker options to `parser`."""
    parser.add_argument(
        "--witness",
        "--anchor",
        dest="witness",
        type=Path,
        help="a checkpoint kept outside the controller (witness file, saved anchor or an "
        "export's manifest.json) that the log must still contain",
    )
    parser.add_argument(
        "--witness-broker",
        metavar="HOST:PORT",
        help="fetch the retained checkpoint from the broker's witness topic",
    )
    parser.add_argument("--mqtt-username", help="operator account (mqtt-account --operator)")
    parser.add_argument("--mqtt-password-file", type=Path)
    parser.add_argument("--mqtt-ca-cert", default="", help="CA certificate for a TLS listener")


def fetch_witness(
    host: str,
    port: int,
    username: str,
    password: str,
    ca_cert: str = "",
    timeout_s: float = FETCH_TIMEOUT_S,
) -> bytes:
    """The retained payload of the witness topic (paho adapter; WitnessFetchError if none)."""
    from controller.fleet.mqtt import MqttSettings, make_client

    settings = MqttSettings(host, port, username, password, ca_cert, client_id=username)
    client = make_client(settings, client_id=f"{username}-witness-{threading.get_native_id()}")
    done = threading.Event()
    got: list[bytes] = []
    failure: list[str] = []

    def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            failure.append(f"the broker refused {username}: {rc}")
            done.set()
            return
        c.subscribe(AUDIT_WITNESS_TOPIC, qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        # The retained copy, or a live one published while we subscribed (delivered with
        # the retain flag cleared).
        if msg.topic == AUDIT_WITNESS_TOPIC:
            got.append(bytes(msg.payload))
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, settings.keepalive_s)
    except OSError as exc:
        raise WitnessFetchError(f"cannot reach the broker {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if failure:
        raise WitnessFetchError(failure[0])
    if not got:
        raise WitnessFetchError(
            f"no retained checkpoint on {AUDIT_WITNESS_TOPIC} within {timeout_s:.0f} s "
            "(the controller publishes one every [audit] checkpoint_interval_s)"
        )
    if len(got[0]) > MAX_PAYLOAD_BYTES:
        raise WitnessFetchError(f"the retained witness is larger than {MAX_PAYLOAD_BYTES} bytes")
    return got[0]


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--witness-broker: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def load_witness(args: argparse.Namespace) -> Checkpoint | None:
    """The witness checkpoint the options name (None: none given).

    Raises ValueError/OSError for bad usage or unreadable files (exit 2 in the caller),
    WitnessFetchError when the broker has none or refuses (exit 1)."""
    if args.witness is not None and args.witness_broker:
        raise ValueError("give --witness or --witness-broker, not both")
    if args.witness is not None:
        data = args.witness.read_bytes()
        try:
            return parse_witness(data)
        except WitnessError as exc:
            raise ValueError(f"{args.witness}: {exc}") from None
    if not args.witness_broker:
        return None
    host, port = _split_host_port(args.witness_broker)
    if not args.mqtt_username or args.mqtt_password_file is None:
        raise ValueError("--witness-broker needs --mqtt-username and --mqtt-password-file")
    if is_controller_account(args.mqtt_username):
        raise ValueError(
            f"{args.mqtt_username} is a controller's own account (its connection would be "
            "replaced): use an operator account, mqtt-account --operator NAME"
        )
    password = args.mqtt_password_file.read_text(encoding="utf-8").strip()
    payload = fetch_witness(host, port, args.mqtt_username, password, args.mqtt_ca_cert)
    try:
        return parse_witness(payload)
    except WitnessError as exc:
        raise WitnessFetchError(f"the broker's retained witness is unusable: {exc}") from None


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add verify-audit to `vigil-controller`."""
    vau = sub.add_parser("verify-audit", help="check the audit log's hash chain and checkpoints")
    add_config_args(vau)
    vau.add_argument("--public-key", type=Path, help="evidence.pub (default: in the data dir)")
    add_witness_args(vau)  # --witness/--anchor FILE, --witness-broker HOST:PORT
    vau.add_argument("--save-anchor", type=Path, help="save the newest checkpoint to this file")
    vau.set_defaults(func=_verify_audit)


def _verify_audit(args: argparse.Namespace) -> int:
    from controller.audit.chain import verify_log
    from controller.audit.log import AuditError, iter_entries, read_checkpoints
    from controller.grants.keys import KeyFileError, evidence_public_key

    try:
        config, engine = config_and_engine(args)
        public = evidence_public_key(args.public_key, config.data_path)
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
