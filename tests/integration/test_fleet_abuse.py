"""Bad input and abuse against the controller's fleet view: each is refused, counted, harmless.

The broker here has one deliberately misconfigured account ("rogue", allowed to write
anywhere) to show that the controller itself ignores what slips through a bad ACL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.fleet.alerts import AlertKind
from controller.fleet.decode import MAX_PAYLOAD_BYTES
from controller.fleet.service import FleetService
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker, start_broker
from tests.integration.test_fleet_support import (
    COUNTY,
    SITE,
    RawDevice,
    record,
    start_reporter,
    start_service,
    wait_online,
)
from tests.support import wait_until

KNOWN = ["nvr-a", "nvr-b", "nvr-flood", "nvr-calm"]


def topic(device: str, leaf: str, county: str = COUNTY) -> str:
    return f"vigil/v1/{county}/{SITE}/{device}/{leaf}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_broker(tmp_path_factory.mktemp("abuse-broker"), {"rogue": "rogue-pw"}, ("rogue",))
    yield b
    b.managed.stop()


@pytest.fixture(scope="module")
def fleet(broker: Broker) -> Iterator[FleetService]:
    service = start_service(broker, KNOWN)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def device_b(broker: Broker, fleet: FleetService) -> Iterator[RawDevice]:
    """nvr-b, online with a birth, played by a raw client."""
    dev = RawDevice(broker, "nvr-b", broker.add_device("nvr-b")).connect()
    assert dev.publish(topic("nvr-b", "birth"), fleet_pb2.Birth(device_id="nvr-b", session=10)) == 0
    assert (
        dev.publish(
            topic("nvr-b", "health"), fleet_pb2.Health(device_id="nvr-b", session=10, seq=1)
        )
        == 0
    )
    wait_until(lambda: getattr(fleet.device("nvr-b"), "health", None) is not None, 10, "b online")
    yield dev
    dev.close()


def counted(fleet: FleetService, key: str, before: dict[str, int]) -> bool:
    return fleet.counters().get(key, 0) > before.get(key, 0)


def test_forged_identity_in_payload_ignored(
    broker: Broker, fleet: FleetService, device_b: RawDevice
) -> None:
    a = RawDevice(broker, "nvr-a", broker.add_device("nvr-a")).connect()
    before = fleet.counters()
    forged = fleet_pb2.DeviceState(device_id="nvr-b", online=False, session=10, reason="will")
    assert a.publish(topic("nvr-a", "state"), forged) == 0  # its own topic: the broker allows
    wait_until(lambda: counted(fleet, "identity_mismatch", before), 10, "mismatch counted")
    assert record(fleet, "nvr-b").online and fleet.device("nvr-a") is None
    a.close()


def test_message_slipping_through_misconfigured_broker_ignored(
    broker: Broker, fleet: FleetService, device_b: RawDevice
) -> None:
    rogue = RawDevice(broker, "rogue", "rogue-pw").connect()
    before = fleet.counters()
    kill_b = fleet_pb2.DeviceState(device_id="rogue", online=False, session=10, reason="will")
    assert rogue.publish(topic("nvr-b", "state"), kill_b) == 0  # the bad ACL lets it through
    wait_until(lambda: counted(fleet, "identity_mismatch", before), 10, "mismatch counted")
    assert record(fleet, "nvr-b").online
    rogue.close()


def test_malformed_oversize_wrong_site_unknown_and_replay(
    broker: Broker, fleet: FleetService, device_b: RawDevice
) -> None:
    before = fleet.counters()
    health_before = record(fleet, "nvr-b").health
    assert device_b.publish(topic("nvr-b", "health"), b"\xff\xff\xff\xff garbage") == 0
    assert device_b.publish(topic("nvr-b", "birth"), b"\x00" * (MAX_PAYLOAD_BYTES + 10)) == 0
    replay = fleet_pb2.Health(device_id="nvr-b", session=10, seq=1, cpu_pct=99)
    assert device_b.publish(topic("nvr-b", "health"), replay) == 0
    elsewhere = fleet_pb2.Health(device_id="nvr-b", session=10, seq=2)
    assert device_b.publish(topic("nvr-b", "health", county="wenxian"), elsewhere) == 0
    ghost = RawDevice(broker, "nvr-ghost", broker.add_device("nvr-ghost")).connect()
    hello = fleet_pb2.Birth(device_id="nvr-ghost", session=1)
    assert ghost.publish(topic("nvr-ghost", "birth"), hello) == 0
    for key in ("malformed", "oversize", "replay", "wrong_site", "unknown_device"):
        wait_until(lambda k=key: counted(fleet, k, before), 10, f"{key} counted")  # type: ignore[misc]
    r = record(fleet, "nvr-b")
    assert r.health is health_before and r.replays == 1 and r.online
    assert fleet.device("nvr-ghost") is None
    ghost.close()


def test_flood_rate_limited_others_unaffected(broker: Broker, fleet: FleetService) -> None:
    calm = start_reporter(broker, "nvr-calm")
    flood = RawDevice(broker, "nvr-flood", broker.add_device("nvr-flood")).connect()
    try:
        wait_online(fleet, "nvr-calm")
        assert (
            flood.publish(
                topic("nvr-flood", "birth"), fleet_pb2.Birth(device_id="nvr-flood", session=3)
            )
            == 0
        )
        wait_until(lambda: fleet.device("nvr-flood") is not None, 10, "flood device born")
        calm_seq = record(fleet, "nvr-calm").health_seq
        for seq in range(1, 401):
            flood.publish(
                topic("nvr-flood", "health"),
                fleet_pb2.Health(device_id="nvr-flood", session=3, seq=seq),
                qos=0,
            )
        wait_until(lambda: record(fleet, "nvr-flood").flood_dropped >= 300, 15, "flood throttled")
        r = record(fleet, "nvr-flood")
        assert r.health_seq < 100  # most of the 400 never reached the state table
        wait_until(
            lambda: any(
                a.kind == AlertKind.FLOODING and a.device_id == "nvr-flood" for a in fleet.alerts()
            ),
            10,
            "flooding alert",
        )
        wait_until(
            lambda: record(fleet, "nvr-calm").health_seq >= calm_seq + 2,
            10,
            "the calm device keeps reporting",
        )
        assert not any(
            a.device_id == "nvr-calm" and a.kind == AlertKind.FLOODING for a in fleet.alerts()
        )
    finally:
        calm.stop()
        flood.close()


def test_controller_survives_everything(fleet: FleetService, tmp_path: Path) -> None:
    assert fleet.counters().get("internal_errors", 0) == 0
    assert fleet.wait_connected(1)
    # Direct calls with hostile topics take the same path as broker deliveries.
    for t in ("", "vigil/v1", "vigil/v1/+/#/x/health", "a/b/c/d/e/f", topic("nvr-a", "nope")):
        assert fleet.handle_message(t, b"\x00") in ("unknown_device", "bad_topic")
