"""Two fully assembled controllers (`build_controller`, as `serve` runs them) in a cluster on
one PostgreSQL and one Mosquitto: real leader election, the fleet over MQTT with one account
per replica. Both serve the same fleet view; an alert is raised once, by the leader, and the
follower serves it too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock
from controller.fleet.alerts import AlertKind
from controller.fleet.service import FleetService
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker, start_broker
from tests.fixtures.postgres import PgServer
from tests.integration.controller_proc import make_config, prepare_data_dir
from tests.integration.test_fleet_support import COUNTY, SITE, RawDevice
from tests.support import wait_until

pytestmark = pytest.mark.postgres

REPLICAS = ("vigil-controller-a", "vigil-controller-b")
DEVICES = [f"nvr-s{i}" for i in range(4)]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_broker(tmp_path / "mosquitto", accounts={r: f"pw-{r}" for r in REPLICAS})
    try:
        yield b
    finally:
        b.managed.stop()


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def replica(tmp_path: Path, broker: Broker, database: str, account: str) -> Controller:
    """A controller as `serve` assembles it, with the fleet (and no HTTP)."""
    secret = broker.password_file_for(account, f"pw-{account}")
    data = tmp_path / account
    prepare_data_dir(data)
    config = make_config(
        data,
        0,
        database_url=database,
        cluster={"enabled": True, "replica_id": account, "lease_s": 3.0, "renew_s": 1.0},
        mqtt={
            "mode": "external",
            "host": "127.0.0.1",
            "port": broker.port,
            "client_id": account,
            "password_file": str(secret),
        },
    )
    return build_controller(config, SystemClock(), Parts(fleet=True))


def fleet_of(c: Controller) -> FleetService:
    assert c.fleet is not None
    return c.fleet.service


def topic(device: str, leaf: str) -> str:
    return f"vigil/v1/{COUNTY}/{SITE}/{device}/{leaf}"


def test_two_serve_replicas_same_fleet_view_alert_raised_once(
    tmp_path: Path, broker: Broker, database: str
) -> None:
    a = replica(tmp_path, broker, database, REPLICAS[0])
    b = replica(tmp_path, broker, database, REPLICAS[1])
    devices: list[RawDevice] = []
    try:
        a.start()
        b.start()
        for d in DEVICES:
            a.catalog.upsert_device(d, COUNTY, SITE, "nvr")
        fa, fb = fleet_of(a), fleet_of(b)
        assert fa.wait_connected(10) and fb.wait_connected(10)
        la, lb = a.leadership, b.leadership
        wait_until(lambda: la.is_leader() != lb.is_leader(), 15, "one leader")
        leader, follower = (fa, fb) if la.is_leader() else (fb, fa)
        time.sleep(2.5)  # one directory refresh: the devices registered above are known
        devices = [RawDevice(broker, d, broker.add_device(d)).connect() for d in DEVICES]
        for dev, d in zip(devices, DEVICES, strict=True):
            st = fleet_pb2.DeviceState(device_id=d, online=True, session=1)
            assert dev.publish(topic(d, "state"), st) == 0
            birth = fleet_pb2.Birth(device_id=d, session=1, health_interval_s=10.0)
            assert dev.publish(topic(d, "birth"), birth) == 0
        for seq in range(1, 11):
            for dev, d in zip(devices, DEVICES, strict=True):
                low = d == DEVICES[0] and seq == 10
                h = fleet_pb2.Health(
                    device_id=d,
                    session=1,
                    seq=seq,
                    at_unix_us=time.time_ns() // 1000,
                    disk_total_bytes=10**12,
                    disk_free_bytes=10**6 if low else 10**11,
                )
                assert dev.publish(topic(d, "health"), h) == 0

        def view(s: FleetService) -> dict[str, tuple[object, ...]]:
            return {
                r.device_id: (r.online, r.session, r.health_seq, r.health.SerializeToString())
                for r in s.devices()
                if r.health is not None
            }

        wait_until(
            lambda: len(view(fa)) == len(DEVICES) and view(fa) == view(fb),
            15,
            "both replicas serve the same fleet view",
        )
        assert all(v[2] == 10 for v in view(fa).values())
        counts = [s.counters().get("shared_health_merged", 0) for s in (fa, fb)]
        assert all(c > 0 for c in counts), f"each replica merged the other's health: {counts}"

        def disk_low(s: FleetService) -> list[object]:
            return [x for x in s.alerts() if x.kind == AlertKind.DISK_LOW]

        wait_until(
            lambda: len(disk_low(leader)) == 1 and disk_low(follower) == disk_low(leader),
            15,
            "the alert on both replicas",
        )
        raised = [x for what, x in leader.alert_log() if what == "raised"]
        assert [(x.device_id, x.kind) for x in raised] == [(DEVICES[0], AlertKind.DISK_LOW)]
        assert follower.alert_log() == []
        assert fa.connections() == 1 and fb.connections() == 1
    finally:
        for dev in devices:
            dev.close()
        b.stop(grace_s=1.0)
        a.stop(grace_s=1.0)
