"""Losses on a camera taken out of an agent's config (issue 15): the agent's buffer still
held unsent segments of it, evicted later and reported by a device whose birth no longer
lists the camera. An operator expects the loss counted against the camera the device owned
(the catalog registers it to the device), and a fact on any other camera dropped with its
reason; either way confirmed, so the agent stops resending it every 30 s (before: refused as
forged, never confirmed, resent forever).

Real parts: FleetService's message path (handle_message, as paho calls it), its history
writer, the catalog (SQLite and PostgreSQL) and the receipts the writer hands on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from controller.catalog import Catalog, make_engine
from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import LossEventRow
from controller.clock import ManualClock
from controller.fleet.directory import StaticDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetService
from protos.vigil.v1 import fleet_pb2

US = 1_000_000
T0 = 1_793_491_200 * US
NVR, OTHER = "nvr-wudu-01-01", "nvr-wudu-01-02"
TOPIC = f"vigil/v1/wudu/wudu-01-01/{NVR}"


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


def send(fleet: FleetService, leaf: str, msg: object) -> str:
    return fleet.handle_message(f"{TOPIC}/{leaf}", msg.SerializeToString())  # type: ignore[attr-defined]


def evictions(seq: int, cameras: Sequence[str]) -> fleet_pb2.Event:
    ev = fleet_pb2.Event(
        kind=fleet_pb2.Event.KIND_UNSENT_EVICTED, device_id=NVR, session=1, seq=seq
    )
    for i, camera in enumerate(cameras):
        fact = ev.losses.add(fact_id=f"{camera}-seg-1", camera_id=camera, bytes=1000)
        fact.range.start_unix_us = T0 + i * 600 * US
        fact.range.end_unix_us = T0 + (i + 1) * 600 * US
        fact.at_unix_us = T0 + 3600 * US
    return ev


def test_a_removed_camera_s_losses_count_and_others_are_dropped_both_confirmed(
    engine: Engine,
) -> None:
    clock = ManualClock(T0 + 3600 * US)
    catalog = Catalog(engine, clock)
    for device, site in ((NVR, "wudu-01-01"), (OTHER, "wudu-01-02")):
        catalog.upsert_device(device, "wudu", site, "nvr")
    catalog.upsert_camera("cam-a", NVR)
    catalog.upsert_camera("cam-gone", NVR)  # taken out of the agent's config, still its
    catalog.upsert_camera("cam-x", OTHER)  # another device's camera
    writer = HistoryWriter(HistoryCatalog(engine, clock))
    directory = StaticDirectory({NVR: ("wudu", "wudu-01-01"), OTHER: ("wudu", "wudu-01-02")})
    fleet = FleetService(MqttSettings("127.0.0.1", 1, "x"), clock, directory, history=writer)
    confirmed: list[str] = []  # what the fleet's LossReceipts would publish (no broker here)
    writer.on_losses_written = lambda rows: confirmed.extend(r.fact_id for r in rows)
    now = clock.now_us()
    send(
        fleet, "state", fleet_pb2.DeviceState(device_id=NVR, online=True, session=1, at_unix_us=now)
    )
    birth = fleet_pb2.Birth(
        device_id=NVR, session=1, at_unix_us=now, health_interval_s=30, county="wudu",
        site="wudu-01-01", cameras=[fleet_pb2.CameraDescription(camera_id="cam-a")],
    )  # fmt: skip
    assert send(fleet, "birth", birth) == "accepted"
    cameras = ["cam-a", "cam-gone", "cam-x", "cam-never"]
    assert send(fleet, "event", evictions(1, cameras)) == "accepted"
    writer.flush()

    with engine.connect() as conn:
        stored = conn.execute(text("SELECT camera_id FROM loss_event ORDER BY camera_id"))
        assert [r[0] for r in stored] == ["cam-a", "cam-gone"]
        evicted = dict(conn.execute(text("SELECT camera_id, evicted_us FROM camera_hour")).all())
    assert evicted == {"cam-a": 600 * US, "cam-gone": 600 * US}
    assert sorted(confirmed) == sorted(f"{c}-seg-1" for c in cameras)
    assert writer.dropped_losses == 2 and writer.written_losses == 2

    # The agent's resend (a receipt lost): confirmed again, nothing counted twice.
    confirmed.clear()
    assert send(fleet, "event", evictions(2, cameras)) == "accepted"
    writer.flush()
    assert sorted(confirmed) == sorted(f"{c}-seg-1" for c in cameras)
    assert (
        HistoryCatalog(engine, clock)
        .hour_sums(T0, T0 + 3600 * US, "camera", ["cam-gone"])[0]
        .sums["evicted_us"]
        == 600 * US
    )


def test_owned_losses_are_checked_against_the_catalog_in_one_write(engine: Engine) -> None:
    clock = ManualClock(T0)
    catalog = Catalog(engine, clock)
    catalog.upsert_device(NVR, "wudu", "wudu-01-01", "nvr")
    catalog.upsert_camera("cam-gone", NVR)
    rows = [
        LossEventRow(device_id=device, camera_id=camera, session=1, seq=1, fact_id=f"{camera}-f",
                     start_us=T0, end_us=T0 + US, size_bytes=1, reason="buffer_full",
                     at_us=T0, received_us=T0)
        for device, camera in ((NVR, "cam-gone"), (OTHER, "cam-gone"), (NVR, "cam-never"))
    ]  # fmt: skip
    dropped = HistoryCatalog(engine, clock).record_owned_losses(rows)
    assert [(r.device_id, r.camera_id) for r in dropped] == [
        (OTHER, "cam-gone"),
        (NVR, "cam-never"),
    ]
