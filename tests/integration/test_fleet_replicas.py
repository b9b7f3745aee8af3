"""Two controller replicas on one Mosquitto and one PostgreSQL (issue 12).

Real components: the managed Mosquitto (password file, ACL, replica accounts), PostgreSQL for
the shared fleet tables and the catalog's device registry, the real FleetService twice, and raw
device clients with real device accounts. Leadership is a plain object the test flips.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from controller.catalog import Catalog
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.fleet.alerts import AlertKind
from controller.fleet.commands import build_command
from controller.fleet.directory import CachedDirectory, StaticDirectory
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService
from controller.fleet.shared import CatalogDeviceSource, SharedFleetState
from edge_agent.health.inputs import ReporterInputs
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker, start_broker
from tests.fixtures.postgres import PgServer
from tests.integration.test_fleet_support import (
    COUNTY,
    SITE,
    FakeBuffer,
    RawDevice,
    camera_ok,
    record,
    start_reporter,
    wait_online,
)
from tests.support import wait_until

pytestmark = pytest.mark.postgres

REPLICAS = ("vigil-controller-a", "vigil-controller-b")
DEVICES = [f"nvr-{i}" for i in range(6)]
HEALTH_PER_DEVICE = 20
NOT_AUTHORIZED = 135
SYNC_S = 0.3
S = 1_000_000


class FlipLeader:
    """A Leadership whose answer the test sets (the real one is an election in the DB)."""

    def __init__(self, leader: bool) -> None:
        self.leader = leader

    def is_leader(self) -> bool:
        return self.leader

    def epoch(self) -> int:
        return 7

    def leader_address(self) -> str:
        return ""


class CountingService(FleetService):
    """The real service, noting which health messages reached it (topic, seq)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.health_seen: list[tuple[str, int]] = []
        self._seen_lock = threading.Lock()

    def handle_message(self, topic: str, payload: bytes, correlation: bytes | None = None) -> str:
        if topic.endswith("/health"):
            h = fleet_pb2.Health()
            h.ParseFromString(payload)
            with self._seen_lock:
                self.health_seen.append((h.device_id, h.seq))
        return super().handle_message(topic, payload, correlation)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_broker(
        tmp_path_factory.mktemp("mosquitto-replicas"), accounts={r: f"pw-{r}" for r in REPLICAS}
    )
    try:
        yield b
    finally:
        b.managed.stop()


@pytest.fixture
def engine(pg_server: PgServer) -> Iterator[Engine]:
    url = pg_server.create_database()
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()
        pg_server.drop_database(url)


def start_replica(
    broker: Broker, engine: Engine, name: str, leader: FlipLeader, devices: list[str]
) -> CountingService:
    service = CountingService(
        MqttSettings("127.0.0.1", broker.port, name, f"pw-{name}", client_id=name),
        SystemClock(),
        StaticDirectory({d: (COUNTY, SITE) for d in devices}),
        FleetOptions(tick_s=0.2, sync_s=SYNC_S),
        leadership=leader,
        shared=SharedFleetState(engine, name),
    )
    service.start()
    assert service.wait_connected(10), f"{name} could not connect"
    return service


def command_result(fleet: FleetService, corr: str) -> fleet_pb2.CommandAck:
    def acked() -> bool:
        cmd = fleet.command(corr)
        return cmd is not None and cmd.ack is not None

    wait_until(acked, 10, "command ack")
    cmd = fleet.command(corr)
    assert cmd is not None and cmd.ack is not None
    return cmd.ack


def topic(device: str, leaf: str) -> str:
    return f"vigil/v1/{COUNTY}/{SITE}/{device}/{leaf}"


def bring_online(dev: RawDevice, device: str, session: int = 1) -> None:
    state = fleet_pb2.DeviceState(device_id=device, online=True, session=session)
    assert dev.publish(topic(device, "state"), state) == 0
    birth = fleet_pb2.Birth(device_id=device, session=session, health_interval_s=10.0)
    assert dev.publish(topic(device, "birth"), birth) == 0


def health(device: str, seq: int, session: int = 1, disk_free: int = 10**11) -> fleet_pb2.Health:
    return fleet_pb2.Health(
        device_id=device,
        session=session,
        seq=seq,
        at_unix_us=time.time_ns() // 1000,
        disk_total_bytes=10**12,
        disk_free_bytes=disk_free,
    )


def view(service: FleetService) -> dict[str, tuple[object, ...]]:
    """What the API serves of each device, minus receive times."""
    return {
        r.device_id: (
            r.online,
            r.session,
            r.health_seq,
            r.health.SerializeToString() if r.health else b"",
        )
        for r in service.devices()
    }


def test_two_replicas_split_health_share_the_view_and_raise_alerts_once(
    broker: Broker, engine: Engine
) -> None:
    lead_a, lead_b = FlipLeader(True), FlipLeader(False)
    a = start_replica(broker, engine, REPLICAS[0], lead_a, DEVICES)
    b = start_replica(broker, engine, REPLICAS[1], lead_b, DEVICES)
    devices = [RawDevice(broker, d, broker.add_device(d)).connect() for d in DEVICES]
    attacker = RawDevice(broker, "mallory", broker.add_device("mallory")).connect()
    try:
        # The attacker tries to join the controllers' group under the names it could guess,
        # and to read everyone's health directly.
        for guess in ("vigil-controllers", "vigil", "controllers"):
            attacker.client.subscribe(f"$share/{guess}/vigil/v1/+/+/+/health", qos=1)
        attacker.client.subscribe("vigil/v1/+/+/+/health", qos=1)
        time.sleep(0.5)
        for dev, d in zip(devices, DEVICES, strict=True):
            bring_online(dev, d)

        def born(s: FleetService, d: str) -> bool:
            r = s.device(d)
            return r is not None and r.birth is not None

        wait_until(lambda: all(born(s, d) for s in (a, b) for d in DEVICES), 10, "every birth seen")
        sent = set()
        for seq in range(1, HEALTH_PER_DEVICE + 1):
            for dev, d in zip(devices, DEVICES, strict=True):
                low = d == DEVICES[0] and seq == HEALTH_PER_DEVICE  # the last one: disk low
                msg = health(d, seq, disk_free=10**6 if low else 10**11)
                assert dev.publish(topic(d, "health"), msg) == 0
                sent.add((d, seq))
        # A device cannot publish into another device's topics.
        forged = health(DEVICES[1], 999)
        assert attacker.publish(topic(DEVICES[1], "health"), forged) == NOT_AUTHORIZED

        wait_until(
            lambda: len(a.health_seen) + len(b.health_seen) >= len(sent), 10, "all health handled"
        )
        time.sleep(1.0)  # anything duplicated or stray would have arrived by now
        seen_a, seen_b = a.health_seen, b.health_seen
        assert seen_a and seen_b, "both replicas get a share of the health stream"
        assert len(set(seen_a)) == len(seen_a) and len(set(seen_b)) == len(seen_b)
        assert not set(seen_a) & set(seen_b), "no message handled by both"
        assert set(seen_a) | set(seen_b) == sent, "every message handled once"
        assert attacker.received == [], "the attacker read nothing"

        # Both fleet views agree once the refresh window has passed.
        wait_until(lambda: view(a) == view(b), 10, "both replicas serve the same fleet view")
        assert all(v[2] == HEALTH_PER_DEVICE for v in view(a).values())

        # The disk-low alert: raised once, by the leader; the follower serves the same alert.
        def disk_low(s: FleetService) -> list[object]:
            return [x for x in s.alerts() if x.kind == AlertKind.DISK_LOW]

        wait_until(lambda: len(disk_low(a)) == 1 and disk_low(b) == disk_low(a), 10, "alert shared")
        raised_a = [x for what, x in a.alert_log() if what == "raised"]
        assert [(x.device_id, x.kind) for x in raised_a] == [(DEVICES[0], AlertKind.DISK_LOW)]
        assert b.alert_log() == []

        # Leadership moves to b: it takes over the alert as raised, and raises nothing again.
        lead_a.leader, lead_b.leader = False, True
        time.sleep(SYNC_S * 5)
        b.tick()
        assert b.alert_log() == []
        assert disk_low(b) == disk_low(a) and len(disk_low(b)) == 1

        # Neither replica was knocked off the broker by the other.
        assert a.wait_connected(0) and b.wait_connected(0)
        assert a.connections() == 1 and b.connections() == 1
    finally:
        for dev in [*devices, attacker]:
            dev.close()
        a.stop()
        b.stop()


def test_a_newly_registered_device_is_accepted_within_the_refresh_window(
    broker: Broker, engine: Engine, tmp_path: Path
) -> None:
    catalog = Catalog(engine, SystemClock())
    catalog.upsert_device("nvr-old", COUNTY, SITE, "nvr")
    directory = CachedDirectory(CatalogDeviceSource(engine), time.monotonic, retry_s=SYNC_S)
    service = FleetService(
        MqttSettings(
            "127.0.0.1", broker.port, REPLICAS[0], f"pw-{REPLICAS[0]}", client_id=REPLICAS[0]
        ),
        SystemClock(),
        directory,
        FleetOptions(tick_s=0.2, sync_s=SYNC_S),
    )
    service.start()
    dev = RawDevice(broker, "nvr-new", broker.add_device("nvr-new")).connect()
    try:
        assert service.wait_connected(10)
        assert directory.lookup("nvr-old") == (COUNTY, SITE)  # loaded at start
        state = fleet_pb2.DeviceState(device_id="nvr-new", online=True, session=1)
        assert dev.publish(topic("nvr-new", "state"), state) == 0
        wait_until(lambda: service.counters().get("unknown_device", 0) >= 1, 5, "refused")
        catalog.upsert_device("nvr-new", COUNTY, SITE, "nvr")
        registered = time.monotonic()

        def accepted() -> bool:
            assert dev.publish(topic("nvr-new", "state"), state) == 0
            return service.device("nvr-new") is not None

        wait_until(accepted, 5, "the new device accepted", interval=0.05)
        assert time.monotonic() - registered < SYNC_S * 4
        assert directory.reloads >= 2
    finally:
        dev.close()
        service.stop()


def test_a_real_agent_over_two_replicas_command_acked_where_it_was_sent(
    broker: Broker, engine: Engine
) -> None:
    """A real agent (HealthReporter): both replicas see it online with its health, and a
    command sent by the follower gets its ack there (acks reach every replica; only the
    sender has the pending command)."""
    a = start_replica(broker, engine, REPLICAS[0], FlipLeader(True), ["nvr-cmd"])
    b = start_replica(broker, engine, REPLICAS[1], FlipLeader(False), ["nvr-cmd"])
    buffer = FakeBuffer()
    inputs = ReporterInputs(statuses=lambda: [camera_ok()], buffer=buffer, holds=buffer)
    reporter = start_reporter(broker, "nvr-cmd", inputs)
    try:
        wait_online(a, "nvr-cmd")
        wait_online(b, "nvr-cmd")
        wait_until(
            lambda: all(record(s, "nvr-cmd").health_seq >= 3 for s in (a, b)),
            15,
            "health on both replicas",
        )
        now = time.time_ns() // 1000
        hold = build_command(
            "hold", camera_id="cam1", start_us=now - 60 * S, end_us=now, case_id="K-9"
        )
        corr = b.send_command("nvr-cmd", hold)
        ack = command_result(b, corr)
        assert ack.ok and buffer.held[0].case_id == "K-9"
        assert a.command(corr) is None
        wait_until(lambda: a.counters().get("ack_unmatched", 0) >= 1, 5, "a saw the ack too")
        # Each replica announces its own retained state; neither overwrote the other's.
        assert b.wait_connected(0) and a.connections() == 1 and b.connections() == 1
    finally:
        reporter.stop()
        a.stop()
        b.stop()


def test_mqtt_account_replica_gets_the_controllers_rights(tmp_path: Path) -> None:
    """`vigil-controller mqtt-account --replica c` on a running managed broker: the account
    logs in as its own client and reads device health (the controller's rights); a device
    account still cannot take a vigil- name."""
    managed = start_broker(tmp_path / "mosquitto")
    out = tmp_path / "replica-c.pass"
    try:
        made = subprocess.run(
            [sys.executable, "-m", "controller", "mqtt-account", "--data-dir", str(tmp_path)]
            + ["--replica", "c", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        assert "vigil-controller-c" in made.stdout
        bad = subprocess.run(
            [sys.executable, "-m", "controller", "mqtt-account", "--data-dir", str(tmp_path)]
            + ["--device-id", "vigil-controller-d", "--out", str(tmp_path / "d.pass")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode != 0 and "reserved" in bad.stderr
        name = "vigil-controller-c"
        service = FleetService(
            MqttSettings("127.0.0.1", managed.port, name, out.read_text().strip(), client_id=name),
            SystemClock(),
            StaticDirectory({"nvr-r": (COUNTY, SITE)}),
            FleetOptions(tick_s=0.2, sync_s=SYNC_S),
        )
        service.start()
        dev = RawDevice(managed, "nvr-r", managed.add_device("nvr-r")).connect()
        try:
            assert service.wait_connected(10)
            bring_online(dev, "nvr-r")
            wait_until(lambda: service.device("nvr-r") is not None, 10, "replica reads devices")
        finally:
            dev.close()
            service.stop()
    finally:
        managed.managed.stop()


def test_each_replica_has_its_own_retained_state(broker: Broker, engine: Engine) -> None:
    """`vigil/v1/controller/<client id>/state` per replica: stopping one marks it offline
    (clean) and leaves the other's online state alone."""
    a = start_replica(broker, engine, REPLICAS[0], FlipLeader(True), [])
    b = start_replica(broker, engine, REPLICAS[1], FlipLeader(False), [])
    pw = "op-secret"
    broker.managed.add_account("vigil-op-state", pw, role="operator")
    op = RawDevice(broker, "vigil-op-state", pw).connect()
    try:
        op.client.subscribe("vigil/v1/controller/+/state", qos=1)

        def states() -> dict[str, fleet_pb2.DeviceState]:
            out = {}
            for m in list(op.received):
                s = fleet_pb2.DeviceState()
                s.ParseFromString(bytes(m.payload))
                out[m.topic] = s
            return out

        topics = {f"vigil/v1/controller/{r}/state" for r in REPLICAS}
        wait_until(lambda: set(states()) == topics, 10, "both replicas' retained states")
        assert all(s.online for s in states().values())
        a.stop()
        gone = f"vigil/v1/controller/{REPLICAS[0]}/state"
        wait_until(lambda: not states()[gone].online, 10, "a's state offline")
        assert states()[gone].reason == "clean"
        assert states()[f"vigil/v1/controller/{REPLICAS[1]}/state"].online
    finally:
        op.close()
        a.stop()
        b.stop()
