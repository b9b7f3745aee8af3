"""The fleet component: a managed Mosquitto when no broker is configured, else the given one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.clock import SystemClock
from controller.fleet.component import FleetComponent
from controller.fleet.directory import StaticDirectory
from tests.fixtures.mosquitto import Broker
from tests.integration.test_fleet_support import COUNTY, SITE, make_reporter, wait_online
from tests.support import free_port, port_open, wait_until


@dataclass(frozen=True)
class Mqtt:
    host: str = ""
    port: int = 1883
    username: str = ""
    password_file: str = ""
    ca_cert: str = ""


def test_managed_broker_when_none_configured(tmp_path: Path) -> None:
    port = free_port()
    component = FleetComponent(
        Mqtt(port=port), tmp_path, SystemClock(), StaticDirectory({"nvr-m": (COUNTY, SITE)})
    )
    component.start()
    reporter = None
    try:
        assert component.broker is not None and component.broker.alive()
        assert component.service is not None and component.service.wait_connected(10)
        component.add_device_account("nvr-m", "pw-m")
        reporter = make_reporter(port, "nvr-m", "pw-m")
        wait_online(component.service, "nvr-m")
    finally:
        if reporter is not None:
            reporter.stop()
        component.stop()
    assert not port_open(port), "the managed broker must be stopped with the component"


def test_external_broker_used_as_is(mosquitto: Broker, tmp_path: Path) -> None:
    secret = mosquitto.password_file_for("ctl-ext", mosquitto.controller_password)
    config = Mqtt("127.0.0.1", mosquitto.port, mosquitto.controller_user, str(secret))
    component = FleetComponent(config, tmp_path, SystemClock(), StaticDirectory())
    component.start()
    try:
        assert component.broker is None
        assert component.service is not None and component.service.wait_connected(10)
        with pytest.raises(RuntimeError, match="external broker"):
            component.add_device_account("x", "y")
    finally:
        component.stop()
    assert not (tmp_path / "mosquitto").exists()
    wait_until(mosquitto.managed.alive, 1, "the external broker still runs")
