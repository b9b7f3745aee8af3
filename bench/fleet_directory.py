"""The fleet's message handler with the device registry in the database: before and after.

Before issue 12 every fleet message looked its device up in the catalog (one database read
under the fleet lock); now the registry is held in memory (`CachedDirectory`, refreshed on
change). `handler_rates` measures FleetService.handle_message alone (no broker, no network),
with the same registry in a SQLite catalog read both ways, on the same prepared health
messages: the rate the message path can reach, whatever paho and the broker deliver.
Used by bench.fleet_health (its JSON gains `handler_msg_s`, `handler_msg_s_read_per_message`).
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from controller.catalog import Catalog
from controller.catalog.db import make_engine
from controller.catalog.models import Device
from controller.clock import SystemClock
from controller.fleet.directory import CachedDirectory, DeviceDirectory
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService
from controller.fleet.shared import CatalogDeviceSource
from protos.vigil.v1 import fleet_pb2


def registry_engine(path: Path, devices: dict[str, tuple[str, str]]) -> Engine:
    """A SQLite catalog with `devices` registered (one bulk insert)."""
    engine = make_engine(f"sqlite:///{path}")
    rows = [
        {
            "device_id": d,
            "county": c,
            "site": s,
            "kind": "nvr",
            "created_at_us": 1,
            "updated_at_us": 1,
        }
        for d, (c, s) in devices.items()
    ]
    with engine.begin() as conn:
        conn.execute(insert(Device.__table__), rows)  # type: ignore[attr-defined]
    return engine


class ReadPerMessage:
    """The directory as it was: one catalog read per lookup (per message)."""

    def __init__(self, engine: Engine) -> None:
        self._catalog = Catalog(engine, SystemClock())

    def lookup(self, device_id: str) -> tuple[str, str] | None:
        row = self._catalog.device(device_id)
        return None if row is None else (row.county, row.site)


def cached(engine: Engine) -> CachedDirectory:
    directory = CachedDirectory(CatalogDeviceSource(engine), time.monotonic)
    directory.refresh()
    return directory


def _messages(devices: dict[str, tuple[str, str]], per_device: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for d, (c, s) in devices.items():
        base = f"vigil/v1/{c}/{s}/{d}"
        st = fleet_pb2.DeviceState(device_id=d, online=True, session=1)
        out.append((f"{base}/state", st.SerializeToString()))
        b = fleet_pb2.Birth(device_id=d, session=1, health_interval_s=10.0)
        out.append((f"{base}/birth", b.SerializeToString()))
    for seq in range(1, per_device + 1):
        for d, (c, s) in devices.items():
            # No timestamp: the clock-skew rule then has nothing to judge (prepared ahead).
            h = fleet_pb2.Health(device_id=d, session=1, seq=seq)
            out.append((f"vigil/v1/{c}/{s}/{d}/health", h.SerializeToString()))
    return out


def handler_rate(directory: DeviceDirectory, messages: list[tuple[str, bytes]]) -> float:
    """Messages per second through handle_message (health part timed; setup not)."""
    service = FleetService(
        MqttSettings("127.0.0.1", 1, "bench"), SystemClock(), directory, FleetOptions()
    )
    first_health = next(i for i, (t, _) in enumerate(messages) if t.endswith("/health"))
    for topic, payload in messages[:first_health]:
        service.handle_message(topic, payload)
    timed = messages[first_health:]
    t0 = time.perf_counter()
    for topic, payload in timed:
        service.handle_message(topic, payload)
    elapsed = time.perf_counter() - t0
    applied = service.counters().get("accepted", 0)
    assert applied >= len(timed), f"only {applied} of {len(timed)} health messages applied"
    return len(timed) / elapsed


def handler_rates(
    work: Path, devices: dict[str, tuple[str, str]], sample: int = 2000, per_device: int = 10
) -> dict[str, float]:
    """handle_message rate with the registry read per message vs held in memory."""
    engine = registry_engine(work / "handler-catalog.db", devices)
    some = dict(list(devices.items())[:sample])
    messages = _messages(some, per_device)
    try:
        before = handler_rate(ReadPerMessage(engine), messages)
        after = handler_rate(cached(engine), messages)
    finally:
        engine.dispose()
    return {
        "handler_msg_s_read_per_message": round(before, 1),
        "handler_msg_s": round(after, 1),
        "handler_speedup": round(after / before, 2),
    }
