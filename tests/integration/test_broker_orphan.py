"""The managed Mosquitto is crash-only with its controller (issue 19, item 1).

- kill -9 of `vigil-controller serve` takes its broker along (PR_SET_PDEATHSIG), and the
  controller restarts by itself on the same port and data dir;
- a broker orphaned anyway (an older controller without that, a broker started from a
  thread that died) is recognised by the data-dir lock and its pid file, verified through
  /proc, stopped and replaced by the restarting controller;
- what is not provably that orphan is never touched: another broker on the port, or a broker
  whose controller still runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.fleet.broker import CONTROLLER_USER, BrokerError, BrokerSettings
from controller.fleet.broker_orphan import read_pid, read_process
from controller.fleet.broker_process import ManagedBroker
from tests.integration.controller_proc import ControllerProcess, free_low_port, prepare_data_dir
from tests.support import port_open, require_binary, wait_until

HINT = "apt-get install -y mosquitto mosquitto-clients"

ORPHAN_MAKER = """
import os, sys
from pathlib import Path
from controller.fleet.broker import BrokerSettings
from controller.fleet.broker_process import ManagedBroker
settings = BrokerSettings(Path(sys.argv[1]), int(sys.argv[2]),
                          accounts={"vigil-controller": "old"}, die_with_controller=False)
ManagedBroker(settings).start()
os._exit(0)  # like kill -9: no stop(), the broker keeps running and holds the lock
"""


def gone(pid: int) -> bool:
    proc = read_process(pid)
    return proc is None or not proc.alive


def make_orphan(broker_dir: Path, port: int) -> int:
    subprocess.run([sys.executable, "-c", ORPHAN_MAKER, str(broker_dir), str(port)], check=True)
    pid = read_pid(broker_dir / "mosquitto.pid")
    assert pid is not None and not gone(pid) and port_open(port)
    return pid


@pytest.fixture(autouse=True)
def _mosquitto() -> None:
    require_binary("mosquitto", HINT)
    require_binary("mosquitto_passwd", HINT)


def test_kill9_of_the_controller_takes_the_broker_along_and_it_restarts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    mqtt_port = free_low_port()
    ctl = ControllerProcess(data, tmp_path, mqtt={"mode": "managed", "port": mqtt_port})
    try:
        for _ in range(2):
            ctl.start()
            wait_until(lambda: port_open(mqtt_port), 20, "the managed broker listening")
            broker = read_pid(data / "mosquitto" / "mosquitto.pid")
            assert broker is not None and not gone(broker)
            ctl.kill9()
            wait_until(lambda: gone(broker), 5, "the broker to die with its controller")  # noqa: B023
            assert not port_open(mqtt_port)
        ctl.start()  # third start: still by itself
        wait_until(lambda: port_open(mqtt_port), 20, "the managed broker listening")
        assert "already in use" not in ctl.log_text()
    finally:
        ctl.stop()
    last = read_pid(data / "mosquitto" / "mosquitto.pid")
    assert last is None or gone(last)


def test_an_orphaned_broker_is_reclaimed_and_replaced(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    mqtt_port = free_low_port()
    orphan = make_orphan(data / "mosquitto", mqtt_port)
    ctl = ControllerProcess(data, tmp_path, mqtt={"mode": "managed", "port": mqtt_port})
    try:
        ctl.start()
        wait_until(lambda: gone(orphan), 10, "the orphan stopped")
        wait_until(lambda: port_open(mqtt_port), 20, "the new managed broker listening")
        fresh = read_pid(data / "mosquitto" / "mosquitto.pid")
        assert fresh is not None and fresh != orphan and not gone(fresh)
        assert "reclaiming the managed broker" in ctl.log_text()
    finally:
        ctl.stop()


def test_a_broker_that_is_not_a_provable_orphan_is_left_alone(tmp_path: Path) -> None:
    port = free_low_port()

    def settings(name: str, port: int) -> BrokerSettings:
        return BrokerSettings(tmp_path / name, port, accounts={CONTROLLER_USER: "pw"})

    own = ManagedBroker(settings("a", port))
    own.start()
    try:
        # Same data dir while its controller (this process) runs: refused, broker untouched.
        twin = ManagedBroker(
            BrokerSettings(tmp_path / "a", free_low_port(), {CONTROLLER_USER: "x"})
        )
        with pytest.raises(BrokerError, match=f"another controller \\(pid {os.getpid()}\\)"):
            twin.start()
        assert own.alive() and port_open(port)
        # Another data dir on the same port: the port is someone else's, nothing is signalled.
        other = ManagedBroker(settings("b", port))
        with pytest.raises(BrokerError, match="already in use"):
            other.start()
        assert own.alive()
        # The refused broker released its lock: it can start on a free port afterwards.
        other = ManagedBroker(settings("b", free_low_port()))
        other.start()
        other.stop()
    finally:
        own.stop()
    assert not port_open(port)
