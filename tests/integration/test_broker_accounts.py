"""Device accounts on an external Mosquitto (dynamic security plugin): enrollment's grant
creates the device's client, retiring the device removes it, and the broker then disconnects
the device and refuses its logins (issue 16). A broker that cannot be reached leaves the
revocation in force and says the account is still there; retiring again removes it.
"""

from __future__ import annotations

import getpass
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.enrollment.accounts import accounts_for
from controller.enrollment.dynsec import DynsecAccounts
from controller.enrollment.operations import OperationError, Operations
from controller.fleet.broker import BrokerError
from controller.fleet.mqtt import MqttSettings
from tests.integration.controller_proc import database_url, make_config, prepare_data_dir, register
from tests.support import ManagedProcess, free_port, wait_until

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_PW = "admin-test-pw"


@dataclass
class Broker:
    port: int
    proc: ManagedProcess
    conf: Path

    def admin(self, password: str = ADMIN_PW) -> MqttSettings:
        return MqttSettings("127.0.0.1", self.port, "admin", password, client_id="admin")


def _start(conf: Path, port: int, log: Path) -> ManagedProcess:
    proc = ManagedProcess(["mosquitto", "-c", str(conf)], log)
    proc.wait_port(port)
    return proc


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    assert PLUGIN.is_file(), "mosquitto's dynamic security plugin is part of the test rig"
    state = tmp_path / "dynsec.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(state), "admin", ADMIN_PW],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
        f"plugin {PLUGIN}\nplugin_opt_config_file {state}\nlistener {port} 127.0.0.1\n"
    )
    b = Broker(port, _start(conf, port, tmp_path / "mosquitto.log"), conf)
    watch = {"acltype": "subscribePattern", "topic": "vigil/#", "allow": True}
    setup = [
        {"command": "createRole", "rolename": "vigil-device", "acls": []},  # the city's
        {"command": "createRole", "rolename": "watch", "acls": [watch]},
        {"command": "createClient", "username": "watcher", "password": "watch-pw",
         "roles": [{"rolename": "watch"}]},
    ]  # fmt: skip
    assert DynsecAccounts(b.admin()).run(setup) == [None, None, None]
    yield b
    b.proc.stop()


def _login(port: int, user: str, password: str) -> tuple[mqtt.Client, list[str]]:
    events: list[str] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, rc, _p: events.append(f"connect {rc}")
    c.on_disconnect = lambda _c, _u, _f, rc, _p: events.append(f"disconnect {rc}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, events


def test_retiring_a_device_removes_its_account_from_the_external_broker(
    tmp_path: Path, broker: Broker
) -> None:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    register(data, "dev2", ["cam2"])
    pw_file = tmp_path / "controller.password"
    pw_file.write_text(ADMIN_PW + "\n")
    mqtt_cfg = {"mode": "external", "host": "127.0.0.1", "port": broker.port,
                "username": "admin", "password_file": str(pw_file)}  # fmt: skip
    config = make_config(data, mqtt=mqtt_cfg, enrollment={"broker_accounts": "dynsec"})
    accounts = accounts_for(config)
    assert isinstance(accounts, DynsecAccounts)
    clock = SystemClock()
    ops = Operations.for_config(config, Catalog(make_engine(database_url(data)), clock), clock)

    # What enrollment does: the device's account, a new password each time (re-enrollment).
    _, first = accounts.grant("dev1")
    user, password = accounts.grant("dev1")
    assert user == "dev1" and password != first
    _, other_pw = accounts.grant("dev2")
    device, events = _login(broker.port, "dev1", password)
    wait_until(device.is_connected, 10, "the device on the city's broker with its own account")
    # Its own topics only: its state arrives, a state in dev2's name does not.
    watcher, _ = _login(broker.port, "watcher", "watch-pw")
    seen: list[str] = []
    watcher.on_message = lambda _c, _u, msg: seen.append(msg.topic)
    wait_until(watcher.is_connected, 10, "the watcher connected")
    watcher.subscribe("vigil/#", qos=1)
    time.sleep(0.3)
    device.publish("vigil/v1/wudu/village1/dev2/state", b"forged", qos=1).wait_for_publish(5)
    device.publish("vigil/v1/wudu/village1/dev1/state", b"own", qos=1).wait_for_publish(5)
    wait_until(lambda: bool(seen), 10, "the device's own state delivered")
    assert seen == ["vigil/v1/wudu/village1/dev1/state"]
    watcher.loop_stop()
    old, old_events = _login(broker.port, "dev1", first)  # the replaced password is refused
    wait_until(lambda: bool(old_events), 10, "an answer to the old password")
    assert not old.is_connected()
    old.loop_stop()

    assert ops.retire("dev1", "test: stolen") == 0
    wait_until(lambda: not device.is_connected(), 10, "the retired device disconnected")
    device.loop_stop()
    again, events = _login(broker.port, "dev1", password)
    wait_until(lambda: bool(events), 10, "an answer to the retired device's login")
    assert not again.is_connected() and "connect Success" not in events[0], events
    again.loop_stop()
    ops.retire("dev1", "again")  # idempotent: an absent account is fine
    get_role = {"command": "getRole", "rolename": "vigil-device-dev1"}
    assert DynsecAccounts(broker.admin()).run([get_role]) == ["Role not found"]

    peer, _ = _login(broker.port, "dev2", other_pw)  # other devices are unaffected
    wait_until(peer.is_connected, 10, "another device still logs in")
    peer.loop_stop()
    peer.disconnect()

    # The broker down: the revocation stands, the answer says the account is left.
    broker.proc.stop()
    with pytest.raises(OperationError, match="still on the broker"):
        ops.retire("dev2", "test")
    assert ops.store.retired("dev2")
    broker.proc = _start(broker.conf, broker.port, tmp_path / "mosquitto2.log")
    ops.retire("dev2", "test")  # now the account goes
    gone, events = _login(broker.port, "dev2", other_pw)
    wait_until(lambda: bool(events), 10, "an answer to dev2's login")
    assert not gone.is_connected()
    gone.loop_stop()


def test_a_controller_without_the_admin_right_gets_a_clear_error(broker: Broker) -> None:
    with pytest.raises(BrokerError, match="refused the controller"):
        DynsecAccounts(broker.admin("wrong"), "vigil-device").remove("dev1")
    # An account with no dynsec rights: the plugin does not answer it.
    plain_client = {"command": "createClient", "username": "plain", "password": "plain-pw"}
    assert DynsecAccounts(broker.admin()).run([plain_client]) == [None]
    plain = MqttSettings("127.0.0.1", broker.port, "plain", "plain-pw", client_id="plain")
    with pytest.raises(BrokerError, match="admin role"):
        DynsecAccounts(plain, "vigil-device", timeout_s=1.0).remove("dev1")
