"""`vigil-controller mqtt-tail`: the fleet's MQTT traffic, decoded, one line per message.

For operators used to `mosquitto_sub -v`: same idea, but protobuf payloads are printed as
JSON, commands show their correlation id, audit witness checkpoints are shown as such, and
malformed payloads are flagged instead of printed as binary noise.

It logs in with an operator account (`mqtt-account --operator NAME` makes `vigil-op-NAME`,
read-only on `vigil/v1/#`), never the controller's: the broker binds the client id to the
account, so a second connection with the controller's account would replace the controller's.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from google.protobuf.json_format import MessageToDict

from controller.audit.witness import (
    AUDIT_WITNESS_TOPIC,
    WitnessError,
    parse_witness,
    witness_payload,
)
from controller.fleet.broker import is_controller_account
from controller.fleet.decode import Decoded, decode, decode_controller_state
from controller.fleet.mqtt import MqttSettings, make_client
from controller.fleet.topics import TAIL_SUBSCRIPTION, is_controller_state_topic


def register(sub: argparse._SubParsersAction[Any]) -> None:
    acc = sub.add_parser(
        "mqtt-account",
        help="give a device an account on the managed broker (writes its password file)",
    )
    acc.add_argument("--data-dir", required=True, help="the controller's data dir")
    who = acc.add_mutually_exclusive_group(required=True)
    who.add_argument("--device-id", help="a device's account (its device id)")
    who.add_argument(
        "--operator",
        metavar="NAME",
        help="a read-only operator account vigil-op-NAME (mqtt-tail, the audit witness)",
    )
    who.add_argument(
        "--replica",
        metavar="NAME",
        help="a controller replica's account vigil-controller-NAME (the controller's rights; "
        "the replica sets [mqtt] client_id to it)",
    )
    acc.add_argument("--out", required=True, help="file to write the account's password to")
    acc.set_defaults(func=run_mqtt_account)
    p = sub.add_parser("mqtt-tail", help="print the fleet's MQTT messages, decoded")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument(
        "--username",
        required=True,
        help="an operator account (mqtt-account --operator NAME), never the controller's",
    )
    p.add_argument("--password-file", type=Path, help="file holding the broker password")
    p.add_argument("--ca-cert", default="", help="CA certificate for a TLS listener")
    p.add_argument("--topic", default=TAIL_SUBSCRIPTION, help="subscription (default: all)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run_tail)


def format_message(topic: str, payload: bytes, correlation: bytes | None, retained: bool) -> str:
    """One printable line: topic, then the decoded payload as compact JSON."""
    flags = " (retained)" if retained else ""
    if topic == AUDIT_WITNESS_TOPIC:
        try:
            cp = parse_witness(payload)
        except WitnessError as exc:
            return f"{topic}{flags} MALFORMED {exc}"
        return f"{topic}{flags} {witness_payload(cp).decode('utf-8')}"
    if is_controller_state_topic(topic):
        state = decode_controller_state(payload)
        if state is None:
            return f"{topic}{flags} MALFORMED {len(payload)} bytes"
        body: dict[str, Any] = MessageToDict(state, preserving_proto_field_name=True)
        return f"{topic}{flags} {json.dumps(body, sort_keys=True)}"
    decoded = decode(topic, payload)
    if not isinstance(decoded, Decoded):
        return f"{topic}{flags} {decoded.reason.upper()} {decoded.detail}"
    body = MessageToDict(decoded.message, preserving_proto_field_name=True)
    if correlation is not None:
        body["correlation"] = correlation.decode("ascii", "replace")
    return f"{topic}{flags} {json.dumps(body, sort_keys=True, ensure_ascii=False)}"


def run_tail(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    if is_controller_account(args.username):
        print(  # noqa: T201
            f"mqtt-tail: {args.username} is a controller's own account; with it this "
            "connection would replace the controller's. Use an operator account: "
            "vigil-controller mqtt-account --data-dir D --operator NAME --out F",
            file=sys.stderr,
        )
        return 2
    password = ""
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"mqtt-tail: cannot read password file: {exc}", file=sys.stderr)  # noqa: T201
            return 2
    settings = MqttSettings(
        host=args.host,
        port=args.port,
        username=args.username,
        password=password,
        ca_cert=args.ca_cert,
    )
    # A binding broker uses the account as client id anyway; elsewhere a unique id keeps two
    # tails of one operator from replacing each other.
    client = make_client(settings, client_id=f"{args.username}-tail-{threading.get_native_id()}")
    done = threading.Event()
    seen = 0
    refused = False

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        nonlocal refused
        if rc.is_failure:
            refused = True
            print(f"mqtt-tail: broker refused: {rc}", file=sys.stderr)  # noqa: T201
            done.set()
            return
        c.subscribe(args.topic, qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal seen
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None) if props is not None else None
        line = format_message(msg.topic, bytes(msg.payload), corr, bool(msg.retain))
        print(line, file=out, flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_async(settings.host, settings.port, settings.keepalive_s)
    client.loop_start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 1 if refused else 0


def run_mqtt_account(args: argparse.Namespace) -> int:
    """Add (or replace) a device's or an operator's account in the managed broker's password
    file, hand the password over in a 0600 file, and make a running broker re-read its
    accounts (and, for an operator, the ACL that makes the account read-only)."""
    import os
    import secrets

    from controller.fleet.broker import (
        BrokerError,
        add_account,
        add_role,
        check_device_account_name,
        operator_account,
        replica_account,
        rewrite_acl,
        signal_reload,
    )

    broker_dir = Path(args.data_dir) / "mosquitto"
    operator = args.operator is not None
    replica = getattr(args, "replica", None) is not None
    try:
        if replica:
            account = replica_account(args.replica)
        else:
            account = operator_account(args.operator) if operator else args.device_id
        if not operator and not replica:
            check_device_account_name(account)
    except (BrokerError, ValueError) as exc:
        sys.stderr.write(f"mqtt-account: {exc}\n")
        return 2
    password = secrets.token_urlsafe(24)
    try:
        broker_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if operator or replica:
            add_role(broker_dir, account, "controller" if replica else "operator")
            rewrite_acl(broker_dir)
        add_account(broker_dir / "passwd", account, password, reserved_ok=operator or replica)
    except (BrokerError, OSError) as exc:
        sys.stderr.write(f"mqtt-account: {exc}\n")
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    reloaded = signal_reload(broker_dir)
    kind = "operator account (read-only)" if operator else "account"
    if replica:
        kind = "controller replica account"
    sys.stdout.write(
        f"{kind} {account} added; password in {out}" + ("; broker reloaded\n" if reloaded else "\n")
    )
    return 0
