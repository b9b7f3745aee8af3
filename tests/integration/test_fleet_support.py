"""Helpers shared by the fleet integration tests (no tests here).

Real components only: a private Mosquitto (tests.fixtures.mosquitto), the real FleetService
and HealthReporter, and raw paho clients logged in with real device accounts to play a
misbehaving device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from google.protobuf.message import Message
from paho.mqtt.enums import CallbackAPIVersion

from controller.clock import SystemClock
from controller.fleet.directory import StaticDirectory
from controller.fleet.monitor import DeviceRecord
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService
from edge_agent.clock import SystemClock as AgentClock
from edge_agent.config import AgentConfig, parse_config
from edge_agent.health.inputs import ReporterInputs
from edge_agent.health.reporter import HealthReporter
from edge_agent.model import BufferStats, CameraStatus, EvictionRecord, Hold
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker
from tests.support import wait_until

COUNTY, SITE = "wudu", "v001"


def agent_toml(device_id: str, port: int, password_file: Path | str = "", **mqtt_opts: Any) -> str:
    extra = "".join(f"{k} = {v!r}\n" for k, v in mqtt_opts.items())
    return f"""
device_id = "{device_id}"
county = "{COUNTY}"
site = "{SITE}"
data_dir = "/tmp"
[[cameras]]
id = "cam1"
url = "rtsp://admin:secret@127.0.0.1:8554/cam1"
[mqtt]
host = "127.0.0.1"
port = {port}
password_file = "{password_file}"
health_interval_s = 1
{extra}"""


def agent_config(device_id: str, port: int, **mqtt_opts: Any) -> AgentConfig:
    return parse_config(agent_toml(device_id, port, **mqtt_opts), "test")


class FakeBuffer:
    """A plain in-memory stand-in with SegmentBuffer's reporting and hold methods."""

    def __init__(self) -> None:
        self.held: list[Hold] = []
        self.released: list[str] = []
        self.pending_evictions: list[EvictionRecord] = []
        self.reported: list[int] = []
        self._next = 0

    def stats(self) -> BufferStats:
        return BufferStats(5000, 10**6, 2, 4000, 1, 1000, len(self.held), 1_700_000_000_000_000)

    def evictions(self, only_unreported: bool = True) -> list[EvictionRecord]:
        return [e for e in self.pending_evictions if e.record_id not in self.reported]

    def mark_evictions_reported(self, record_ids: Sequence[int]) -> None:
        self.reported.extend(record_ids)

    def hold(self, camera_id: str, start_us: int, end_us: int, case_id: str) -> Hold:
        self._next += 1
        h = Hold(f"hold-{self._next}", camera_id, start_us, end_us, case_id)
        self.held.append(h)
        return h

    def release(self, hold_id: str) -> bool:
        before = len(self.held)
        self.held = [h for h in self.held if h.hold_id != hold_id]
        self.released.append(hold_id)
        return len(self.held) < before

    def holds(self) -> list[Hold]:
        return list(self.held)


def camera_ok() -> CameraStatus:
    now = time.time_ns() // 1000
    return CameraStatus("cam1", connected=True, last_frame_us=now, fps=25.0, bitrate_bps=10**6)


def make_reporter(
    port: int, device_id: str, password: str, inputs: ReporterInputs | None = None, **mqtt_opts: Any
) -> HealthReporter:
    """A started reporter for `device_id` whose account already exists (or will)."""
    reporter = HealthReporter(
        agent_config(device_id, port, **mqtt_opts),
        AgentClock(),
        inputs or ReporterInputs(statuses=lambda: [camera_ok()], buffer=FakeBuffer()),
        agent_version="test",
        password=password,
    )
    reporter.start()
    return reporter


def start_reporter(
    broker: Broker,
    device_id: str,
    inputs: ReporterInputs | None = None,
    password: str | None = None,
    **mqtt_opts: Any,
) -> HealthReporter:
    """Provision the device's account (unless `password` is given) and start its reporter.

    Re-provisioning a connected account disconnects it (Mosquitto re-checks clients on
    reload), so tests that need a second connection pass the existing password."""
    pw = password if password is not None else broker.add_device(device_id)
    return make_reporter(broker.port, device_id, pw, inputs, **mqtt_opts)


def start_service(
    broker: Broker, devices: Sequence[str], options: FleetOptions | None = None
) -> FleetService:
    directory = StaticDirectory({d: (COUNTY, SITE) for d in devices})
    service = FleetService(
        MqttSettings("127.0.0.1", broker.port, broker.controller_user, broker.controller_password),
        SystemClock(),
        directory,
        options or FleetOptions(tick_s=0.2),
    )
    service.start()
    assert service.wait_connected(10), "controller could not connect to the broker"
    return service


def record(service: FleetService, device_id: str) -> DeviceRecord:
    """The device's record, which must exist."""
    r = service.device(device_id)
    assert r is not None, f"controller has no record of {device_id}"
    return r


def birth_of(service: FleetService, device_id: str) -> fleet_pb2.Birth:
    b = record(service, device_id).birth
    assert b is not None, f"controller has no birth of {device_id}"
    return b


def wait_online(service: FleetService, device_id: str, timeout: float = 10.0) -> None:
    def ok() -> bool:
        r = service.device(device_id)
        return r is not None and r.online and r.birth is not None

    wait_until(ok, timeout, f"{device_id} online with a birth")


class RawDevice:
    """A bare paho client with a device's account: publishes whatever a test wants."""

    def __init__(
        self, broker: Broker, username: str, password: str, client_id: str | None = None
    ) -> None:
        self.acks: dict[int, int] = {}
        self.received: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or username, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._broker = broker

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.acks[mid] = rc.value

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append(msg)

    def connect(self) -> RawDevice:
        self.client.connect("127.0.0.1", self._broker.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "raw device connected")
        return self

    def publish(self, topic: str, payload: bytes | Message, qos: int = 1) -> int | None:
        """Publish; for QoS 1, wait for the PUBACK and return its reason code."""
        data = payload if isinstance(payload, bytes) else payload.SerializeToString()
        info = self.client.publish(topic, data, qos=qos)
        if qos == 0:
            return None
        wait_until(lambda: info.mid in self.acks, 10, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
