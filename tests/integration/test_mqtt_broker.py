"""The managed Mosquitto: accounts, the fleet ACL (MQTT 5 reason codes), raised queues, and
`vigil-controller mqtt-tail` decoding real traffic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.fleet.broker import (
    BrokerError,
    BrokerSettings,
    acl_text,
    add_account,
    write_accounts,
)
from controller.fleet.broker_process import ManagedBroker
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker
from tests.integration.test_fleet_support import COUNTY, SITE, RawDevice
from tests.support import wait_until

NOT_AUTHORIZED = 135


def topic(device: str, leaf: str) -> str:
    return f"vigil/v1/{COUNTY}/{SITE}/{device}/{leaf}"


def test_config_raises_queue_limits_and_denies_anonymous(mosquitto: Broker) -> None:
    conf = mosquitto.managed.conf_path.read_text()
    assert "max_queued_messages 1000000" in conf and "allow_anonymous false" in conf
    assert mosquitto.managed.alive() and mosquitto.managed.pid is not None


def test_device_may_publish_only_its_own_topics(mosquitto: Broker) -> None:
    me = RawDevice(mosquitto, "acl-1", mosquitto.add_device("acl-1")).connect()
    mosquitto.add_device("acl-2")
    assert me.publish(topic("acl-1", "health"), b"") == 16  # accepted (no subscribers)
    for leaf in ("state", "birth", "event", "cmd_ack"):
        assert me.publish(topic("acl-1", leaf), b"") in (0, 16), leaf
    assert me.publish(topic("acl-2", "health"), b"") == NOT_AUTHORIZED
    assert me.publish(topic("acl-2", "state"), b"") == NOT_AUTHORIZED
    assert me.publish(topic("acl-1", "cmd/hold"), b"") == NOT_AUTHORIZED  # no self-commands
    assert me.publish("vigil/v1/controller/state", b"") == NOT_AUTHORIZED
    me.close()


def test_device_reads_only_its_own_commands(mosquitto: Broker) -> None:
    one = RawDevice(mosquitto, "acl-3", mosquitto.add_device("acl-3")).connect()
    two = RawDevice(mosquitto, "acl-4", mosquitto.add_device("acl-4")).connect()
    one.client.subscribe("vigil/v1/+/+/+/cmd/#", qos=1)  # tries to read everyone's commands
    two.client.subscribe(topic("acl-4", "cmd/#"), qos=1)
    ctl = RawDevice(mosquitto, mosquitto.controller_user, mosquitto.controller_password, "ctl-acl")
    ctl.connect()
    wait_until(
        lambda: ctl.publish(topic("acl-4", "cmd/rebirth"), b"x") == 0 and bool(two.received),
        10,
        "acl-4 receives its command",
    )
    assert ctl.publish(topic("acl-3", "cmd/rebirth"), b"mine") == 0
    wait_until(lambda: bool(one.received), 10, "acl-3 receives its own command")
    assert [m.topic for m in one.received] == [topic("acl-3", "cmd/rebirth")]
    for c in (one, two, ctl):
        c.close()


def test_bad_credentials_refused(mosquitto: Broker) -> None:
    codes: list[int] = []
    for user, pw in (("acl-5", "wrong"), ("nobody", "x")):
        if user == "acl-5":
            mosquitto.add_device("acl-5", "right")
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, pw)
        c.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
        c.connect("127.0.0.1", mosquitto.port)
        c.loop_start()
        expected = len(codes) + 1
        wait_until(lambda n=expected: len(codes) >= n, 10, "CONNACK")  # type: ignore[misc]
        c.loop_stop()
        c.disconnect()
    assert all(code in (134, 135) for code in codes), codes  # bad user/password, not authorised


def test_bad_account_names_refused(tmp_path: Path) -> None:
    for name in ("", "a/b", "+", "#x", "x" * 65, "dev ice"):
        with pytest.raises(BrokerError):
            add_account(tmp_path / "passwd", name, "pw")
    with pytest.raises(BrokerError):
        add_account(tmp_path / "passwd", "ok", "pass:word")
    assert not (tmp_path / "passwd").exists()
    for accounts in ({"ok": "pw", "bad/name": "pw"}, {"ok": "pass\nword"}):
        with pytest.raises(BrokerError):
            write_accounts(tmp_path / "bulk", accounts)
    assert not (tmp_path / "bulk").exists()
    write_accounts(tmp_path / "bulk", {"dev-1": "pw1", "dev-2": "pw2"})
    lines = (tmp_path / "bulk").read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["dev-1", "dev-2"]
    # Hashed (mosquitto's "$7$..." form), not plain: a hash may contain "pw" by chance.
    assert all(ln.split(":", 1)[1].startswith("$") for ln in lines), lines
    assert not {ln.split(":", 1)[1] for ln in lines} & {"pw1", "pw2"}
    assert (tmp_path / "bulk").stat().st_mode & 0o077 == 0


def test_acl_allows_devices_only_their_leaves() -> None:
    acl = acl_text()
    assert "pattern write vigil/v1/+/+/%u/health" in acl
    assert "pattern read vigil/v1/+/+/%u/cmd/#" in acl
    assert "%u/#" not in acl.replace("%u/cmd/#", "")


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    broker = ManagedBroker(BrokerSettings(tmp_path, 1, mosquitto_bin="no-such-mosquitto"))
    with pytest.raises(BrokerError, match="apt-get install"):
        broker.start()


def test_mqtt_tail_prints_decoded_messages(mosquitto: Broker, tmp_path: Path) -> None:
    # An operator's read-only account: the controller's would replace its own connection.
    mosquitto.managed.add_account("vigil-op-tail", "op-tail-pw", role="operator")
    secret = mosquitto.password_file_for("operator", "op-tail-pw")
    dev = RawDevice(mosquitto, "tail-1", mosquitto.add_device("tail-1")).connect()
    # Two retained messages wait for the tail; then a malformed event arrives live.
    state = fleet_pb2.DeviceState(device_id="tail-1", online=True, session=77)
    health = fleet_pb2.Health(device_id="tail-1", session=77, seq=1, cpu_pct=12.5)
    for leaf, msg in (("state", state), ("health", health)):
        info = dev.client.publish(topic("tail-1", leaf), msg.SerializeToString(), 1, True)
        info.wait_for_publish(5)
    tail = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller",
            "mqtt-tail",
            "--port",
            str(mosquitto.port),
            "--username",
            "vigil-op-tail",
            "--password-file",
            str(secret),
            "--topic",
            "vigil/v1/+/+/tail-1/#",
            "--count",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def delivered() -> bool:
            dev.publish(topic("tail-1", "event"), b"\xff\xff\xff")
            return tail.poll() is not None

        wait_until(delivered, 20, "mqtt-tail printed 3 messages and exited", interval=0.3)
        out, err = tail.communicate(timeout=5)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    lines = sorted(out.splitlines())
    assert len(lines) == 3, lines
    event_line, health_line, state_line = lines
    assert event_line.startswith(topic("tail-1", "event") + " MALFORMED")
    assert health_line.startswith(topic("tail-1", "health") + " (retained) {")
    assert '"cpu_pct": 12.5' in health_line and '"seq": "1"' in health_line
    assert state_line.startswith(topic("tail-1", "state") + " (retained) {")
    assert '"session": "77"' in state_line and '"online": true' in state_line
    dev.close()


def test_mqtt_tail_wrong_password_fails(mosquitto: Broker) -> None:
    secret = mosquitto.password_file_for("bad", "wrong")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "mqtt-tail",
            "--port",
            str(mosquitto.port),
            "--username",
            "vigil-op-nobody",
            "--password-file",
            str(secret),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "refused" in result.stderr
