"""Agent reporter + controller fleet service over a real Mosquitto with the fleet ACL."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.fleet.broker import CONTROLLER_USER, BrokerSettings
from controller.fleet.broker_process import ManagedBroker
from controller.fleet.commands import build_command
from controller.fleet.service import FleetService
from edge_agent.config import AgentConfig
from edge_agent.health.inputs import ReporterInputs
from edge_agent.model import AgentEvent, EvictionRecord
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker
from tests.integration.test_fleet_support import (
    COUNTY,
    SITE,
    FakeBuffer,
    RawDevice,
    agent_toml,
    birth_of,
    camera_ok,
    make_reporter,
    record,
    start_reporter,
    start_service,
    wait_online,
)
from tests.support import ManagedProcess, free_port, wait_until

DEVICES = [f"nvr-{i}" for i in range(1, 10)]
NOW = time.time_ns() // 1000
S = 1_000_000


@pytest.fixture(scope="module")
def fleet(mosquitto: Broker) -> Iterator[FleetService]:
    service = start_service(mosquitto, DEVICES)
    yield service
    service.stop()


def test_birth_state_health_event_and_clean_stop(mosquitto: Broker, fleet: FleetService) -> None:
    buffer = FakeBuffer()
    buffer.pending_evictions = [
        EvictionRecord(41, "seg-41", "cam1", NOW - 60 * S, NOW - 50 * S, 777, False, NOW, False)
    ]
    inputs = ReporterInputs(statuses=lambda: [camera_ok()], buffer=buffer)
    reporter = start_reporter(mosquitto, "nvr-1", inputs)
    try:
        wait_online(fleet, "nvr-1")
        reporter.submit_event(AgentEvent("camera_lost", NOW, camera_id="cam1", detail="eof"))
        wait_until(lambda: len(fleet.events("nvr-1")) >= 2, 10, "two events at the controller")
        kinds = {e.kind for e in fleet.events("nvr-1")}
        assert kinds == {fleet_pb2.Event.KIND_CAMERA_LOST, fleet_pb2.Event.KIND_UNSENT_EVICTED}
        evicted = [
            e for e in fleet.events("nvr-1") if e.kind == fleet_pb2.Event.KIND_UNSENT_EVICTED
        ]
        fact = evicted[0].losses[0]  # a batch of one (edge_agent/health/evictions.py)
        assert fact.range.start_unix_us == NOW - 60 * S and fact.bytes == 777
        assert fact.fact_id == "seg-41" and fact.camera_id == "cam1"
        # This fleet keeps no history: nothing confirms the loss, so the agent keeps it
        # unreported (to resend) instead of trusting the broker's PUBACK.
        assert buffer.reported == []
        wait_until(lambda: (record(fleet, "nvr-1").health_seq or 0) >= 2, 10, "two health reports")
        r = record(fleet, "nvr-1")
        assert r is not None and r.birth is not None and r.health is not None
        assert r.session == reporter.session and r.birth.county == COUNTY
        assert [c.camera_id for c in r.birth.cameras] == ["cam1"]
        assert "secret" not in r.birth.cameras[0].url_redacted
        assert r.health.segments_unsent == 2 and r.health.cameras[0].connected
        assert fleet.history("nvr-1") and fleet.history("nvr-1")[0].samples >= 1
        assert r.gaps == 0 and r.replays == 0
    finally:
        reporter.stop()
    wait_until(lambda: not record(fleet, "nvr-1").online, 10, "offline after clean stop")
    assert record(fleet, "nvr-1").reason == "clean"


def test_will_on_kill_marks_offline_with_reason_will(
    mosquitto: Broker, fleet: FleetService, tmp_path: Path
) -> None:
    password = mosquitto.add_device("nvr-2")
    secret = mosquitto.password_file_for("nvr-2", password)
    config = tmp_path / "agent.toml"
    config.write_text(agent_toml("nvr-2", mosquitto.port, password_file=secret))
    agent = ManagedProcess(
        [sys.executable, "-m", "edge_agent.health", "--config", str(config)], tmp_path / "agent.log"
    )
    try:
        wait_online(fleet, "nvr-2", timeout=20)
        session = record(fleet, "nvr-2").session
        agent.kill9()
        wait_until(lambda: not record(fleet, "nvr-2").online, 10, "offline after kill -9")
        r = record(fleet, "nvr-2")
        assert r.reason == "will" and r.session == session
    finally:
        agent.stop()


def test_late_will_from_old_connection_is_fenced(mosquitto: Broker, fleet: FleetService) -> None:
    password = mosquitto.add_device("nvr-3")
    reporter = start_reporter(mosquitto, "nvr-3", password=password)
    try:
        wait_online(fleet, "nvr-3")
        stale_before = record(fleet, "nvr-3").stale
        # The Will of an older connection (session 5) delivered after the new session's
        # birth, as the broker does when it drops a half-open old connection late. (A second
        # live connection per account no longer exists: the client id is the username.)
        will = fleet_pb2.DeviceState(device_id="nvr-3", online=False, session=5, reason="will")
        client = reporter._client
        assert client is not None
        topic = f"vigil/v1/{COUNTY}/{SITE}/nvr-3/state"
        client.publish(topic, will.SerializeToString(), 1, True).wait_for_publish(10)
        wait_until(lambda: record(fleet, "nvr-3").stale > stale_before, 10, "late Will arrives")
        r = record(fleet, "nvr-3")
        assert r.online and r.session == reporter.session
    finally:
        reporter.stop()


def test_sequence_gap_triggers_rebirth_and_new_birth(
    mosquitto: Broker, fleet: FleetService
) -> None:
    password = mosquitto.add_device("nvr-4")
    reporter = start_reporter(mosquitto, "nvr-4", password=password)
    try:
        wait_online(fleet, "nvr-4")
        first_birth = birth_of(fleet, "nvr-4").at_unix_us
        # The device's own connection (one per account: the client id is the username)
        # injects a jump in the numbering.
        client = reporter._client
        assert client is not None
        jump = fleet_pb2.Health(
            device_id="nvr-4", session=reporter.session, seq=500, at_unix_us=NOW
        )
        info = client.publish(f"vigil/v1/{COUNTY}/{SITE}/nvr-4/health", jump.SerializeToString(), 1)
        info.wait_for_publish(10)
        wait_until(lambda: record(fleet, "nvr-4").gaps == 1, 10, "gap detected")
        wait_until(
            lambda: birth_of(fleet, "nvr-4").at_unix_us > first_birth, 10, "rebirth answered"
        )
        r = record(fleet, "nvr-4")
        assert r.rebirth_requests == 1 and fleet.counters()["rebirth_requests"] >= 1
        # After the rebirth the agent's numbering restarts and is accepted again.
        seq = r.health_seq
        wait_until(lambda: record(fleet, "nvr-4").health_seq > seq, 10, "health after rebirth")
    finally:
        reporter.stop()


def command_result(fleet: FleetService, corr: str) -> fleet_pb2.CommandAck:
    def acked() -> bool:
        cmd = fleet.command(corr)
        return cmd is not None and cmd.ack is not None

    wait_until(acked, 10, "command ack")
    cmd = fleet.command(corr)
    assert cmd is not None and cmd.ack is not None
    return cmd.ack


def test_commands_acked_with_correlation(mosquitto: Broker, fleet: FleetService) -> None:
    buffer = FakeBuffer()
    applied: list[AgentConfig] = []
    inputs = ReporterInputs(
        statuses=lambda: [camera_ok()], buffer=buffer, holds=buffer, on_reconfigure=applied.append
    )
    reporter = start_reporter(mosquitto, "nvr-5", inputs)
    try:
        wait_online(fleet, "nvr-5")
        hold = build_command(
            "hold", camera_id="cam1", start_us=NOW - 60 * S, end_us=NOW, case_id="K-1"
        )
        ack = command_result(fleet, fleet.send_command("nvr-5", hold))
        assert ack.ok and ack.result == "hold-1" and buffer.held[0].case_id == "K-1"

        release = build_command("release", hold_id="hold-1")
        ack = command_result(fleet, fleet.send_command("nvr-5", release))
        assert ack.ok and buffer.released == ["hold-1"] and buffer.held == []
        ack = command_result(fleet, fleet.send_command("nvr-5", release))
        assert not ack.ok and "no matching hold" in ack.error

        old_config = reporter.config
        bad = build_command("reconfigure", config_toml="device_id = 'nvr-5'\nbogus = 1\n")
        ack = command_result(fleet, fleet.send_command("nvr-5", bad))
        assert not ack.ok and "bogus" in ack.error
        assert reporter.config is old_config and applied == []

        births = birth_of(fleet, "nvr-5").at_unix_us
        text = agent_toml("nvr-5", mosquitto.port).replace("cam1", "cam7")
        ack = command_result(
            fleet, fleet.send_command("nvr-5", build_command("reconfigure", config_toml=text))
        )
        assert ack.ok and [c.id for c in applied[0].cameras] == ["cam7"]
        wait_until(lambda: birth_of(fleet, "nvr-5").at_unix_us > births, 10, "new birth")
        assert [c.camera_id for c in birth_of(fleet, "nvr-5").cameras] == ["cam7"]

        ack = command_result(fleet, fleet.send_command("nvr-5", fleet_pb2.Command(verb="explode")))
        assert not ack.ok and "unknown verb" in ack.error
        up = build_command("upload_range", camera_id="cam7", start_us=NOW - S, end_us=NOW)
        ack = command_result(fleet, fleet.send_command("nvr-5", up))
        assert not ack.ok and "not available" in ack.error
        assert reporter.connected()
    finally:
        reporter.stop()


def test_malformed_command_gets_error_ack(mosquitto: Broker, fleet: FleetService) -> None:
    reporter = start_reporter(mosquitto, "nvr-6")
    try:
        wait_online(fleet, "nvr-6")
        # Its own account with the controller's rights: with the controller's account (client
        # id bound to it) this client and the running fleet service would replace each other.
        mosquitto.managed.add_account("vigil-test-commander", "commander-pw", role="controller")
        controller = RawDevice(mosquitto, "vigil-test-commander", "commander-pw", "ctl-raw")
        controller.client.subscribe(f"vigil/v1/{COUNTY}/{SITE}/nvr-6/cmd_ack", qos=1)
        controller.connect()
        controller.client.subscribe(f"vigil/v1/{COUNTY}/{SITE}/nvr-6/cmd_ack", qos=1)
        assert (
            controller.publish(f"vigil/v1/{COUNTY}/{SITE}/nvr-6/cmd/hold", b"\xff\xfe garbage") == 0
        )
        wait_until(lambda: bool(controller.received), 10, "an ack for the garbage command")
        ack = fleet_pb2.CommandAck.FromString(bytes(controller.received[0].payload))
        assert not ack.ok and "malformed command payload" in ack.error
        assert reporter.connected()
        # Neither connection replaced the other.
        assert controller.client.is_connected() and fleet.wait_connected(0)
        controller.close()
    finally:
        reporter.stop()


def test_offline_queue_bounded_and_drop_reported(tmp_path: Path) -> None:
    port, password = free_port(), "pw-nvr-7"
    # The agent starts before its broker exists: it queues events, then reconnects.
    reporter = make_reporter(port, "nvr-7", password, offline_queue=3)
    try:
        for i in range(5):
            reporter.submit_event(
                AgentEvent("camera_lost", NOW + i, camera_id="cam1", detail=str(i))
            )
        assert not reporter.connected() and reporter.dropped_events_total == 2
        accounts = {CONTROLLER_USER: "ctl-pw"}
        managed = ManagedBroker(BrokerSettings(tmp_path / "broker", port, accounts=accounts))
        managed.start()
        broker = Broker("127.0.0.1", port, CONTROLLER_USER, "ctl-pw", managed, tmp_path)
        service = start_service(broker, ["nvr-7"])
        # The device's account appears only once the controller listens, so its retries
        # (refused until then) cannot deliver the queue before anyone subscribed.
        managed.add_account("nvr-7", password)
        try:
            wait_until(lambda: len(service.events("nvr-7")) >= 4, 20, "queued events delivered")
            events = service.events("nvr-7")
            assert [e.detail for e in events[:3]] == ["2", "3", "4"]
            assert events[3].kind == fleet_pb2.Event.KIND_EVENTS_DROPPED and events[3].bytes == 2
            assert [e.seq for e in events] == [1, 2, 3, 4]
            # Subscribed again after (re)connecting: commands reach it.
            ack = command_result(service, service.request_rebirth("nvr-7"))
            assert ack.ok and ack.verb == "rebirth"
        finally:
            service.stop()
            managed.stop()
    finally:
        reporter.stop()
