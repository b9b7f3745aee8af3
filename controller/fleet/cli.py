"""`vigil-controller mqtt-tail`: the fleet's MQTT traffic, decoded, one line per message.

For operators used to `mosquitto_sub -v`: same idea, but protobuf payloads are printed as
JSON, commands show their correlation id, and malformed payloads are flagged instead of
printed as binary noise.
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

from controller.fleet.decode import Decoded, decode, decode_controller_state
from controller.fleet.mqtt import MqttSettings, make_client
from controller.fleet.topics import CONTROLLER_STATE_TOPIC, TAIL_SUBSCRIPTION


def register(sub: argparse._SubParsersAction[Any]) -> None:
    acc = sub.add_parser(
        "mqtt-account",
        help="give a device an account on the managed broker (writes its password file)",
    )
    acc.add_argument("--data-dir", required=True, help="the controller's data dir")
    acc.add_argument("--device-id", required=True)
    acc.add_argument("--out", required=True, help="file to write the device's password to")
    acc.set_defaults(func=run_mqtt_account)
    """Add this concern's subcommands to `vigil-controller`."""
    p = sub.add_parser("mqtt-tail", help="print the fleet's MQTT messages, decoded")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username", default="vigil-controller")
    p.add_argument("--password-file", type=Path, help="file holding the broker password")
    p.add_argument("--ca-cert", default="", help="CA certificate for a TLS listener")
    p.add_argument("--topic", default=TAIL_SUBSCRIPTION, help="subscription (default: all)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run_tail)


def format_message(topic: str, payload: bytes, correlation: bytes | None, retained: bool) -> str:
    """One printable line: topic, then the decoded payload as compact JSON."""
    flags = " (retained)" if retained else ""
    if topic == CONTROLLER_STATE_TOPIC:
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
    client = make_client(settings, client_id=f"vigil-tail-{threading.get_native_id()}")
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
        print(line, file=out, flush=True)  # noqa: T201
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
    """Add (or replace) a device account in the managed broker's password file, hand the
    password to the installer in a 0600 file, and make a running broker re-read its accounts."""
    import os
    import secrets

    from controller.broker import BrokerError, add_account, check_account_name, signal_reload

    try:
        check_account_name(args.device_id)
    except (BrokerError, ValueError) as exc:
        sys.stderr.write(f"mqtt-account: {exc}\n")
        return 2
    broker_dir = Path(args.data_dir) / "mosquitto"
    broker_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    try:
        add_account(broker_dir / "passwd", args.device_id, password)
    except BrokerError as exc:
        sys.stderr.write(f"mqtt-account: {exc}\n")
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    reloaded = signal_reload(broker_dir)
    sys.stdout.write(
        f"account {args.device_id} added; password in {out}"
        + ("; broker reloaded\n" if reloaded else "\n")
    )
    return 0
