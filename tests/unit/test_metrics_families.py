"""The pure parts of the metrics: fleet and scheduler families, the readiness decision, the
gRPC method label, the agent's textfile and JSON log lines (all without servers)."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.api.metrics import (
    Metrics,
    StateCollector,
    fleet_families,
    route_family,
    scheduler_families,
)
from controller.api.readiness import check
from controller.fleet.monitor import DeviceRecord
from controller.grpcserver.observe import short_method
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.upkeep import DeviceSnapshot, Snapshot
from edge_agent.health.textfile import render as render_textfile
from protos.vigil.v1 import fleet_pb2
from vigil_common.jsonlog import JsonFormatter, formatter_for
from vigil_common.redact import RedactingFilter


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def health(unsent: int, age: float, *connected: bool) -> fleet_pb2.Health:
    return fleet_pb2.Health(
        buffer_bytes=1000,
        segments_unsent=unsent,
        oldest_unsent_age_s=age,
        cameras=[
            fleet_pb2.CameraHealth(camera_id=f"c{i}", connected=c) for i, c in enumerate(connected)
        ],
    )


def test_fleet_families_count_devices_cameras_and_backlog_per_county() -> None:
    devices = [
        DeviceRecord("d1", "wudu", "s1", online=True, health=health(3, 40.0, True, False)),
        DeviceRecord("d2", "wudu", "s2", online=True, health=health(2, 120.0, True)),
        DeviceRecord("d3", "wudu", "s3", online=False, health=health(5, 900.0, True)),
        DeviceRecord("d4", "kang", "s1", online=False),
    ]
    registry = CollectorRegistry()
    registry.register(StateCollector(_Fleet(devices, {"ok": 7, "stale": 1}), None))
    got = values(generate_latest(registry).decode())
    assert got[("vigil_devices", (("county", "wudu"), ("state", "online")))] == 2
    assert got[("vigil_devices", (("county", "wudu"), ("state", "offline")))] == 1
    assert got[("vigil_devices", (("county", "kang"), ("state", "offline")))] == 1
    # Cameras count only when connected on an online device (d3's camera is not online).
    assert got[("vigil_cameras_online", (("county", "wudu"),))] == 2
    assert got[("vigil_cameras_online", (("county", "kang"),))] == 0
    # Backlog: the last report of every device, online or not (an offline one still owes).
    assert got[("vigil_backlog_segments_unsent", (("county", "wudu"),))] == 10
    assert got[("vigil_backlog_oldest_unsent_age_seconds", (("county", "wudu"),))] == 900.0
    assert got[("vigil_backlog_buffer_bytes", (("county", "wudu"),))] == 3000
    assert got[("vigil_mqtt_messages_total", (("kind", "ok"),))] == 7
    assert len(fleet_families([], {})) == 6


class _Fleet:
    def __init__(self, devices: list[DeviceRecord], counters: dict[str, int]) -> None:
        self._devices, self._counters = devices, counters

    def devices(self) -> list[DeviceRecord]:
        return self._devices

    def counters(self) -> dict[str, int]:
        return self._counters


def test_scheduler_families_count_leases_streams_and_link_load() -> None:
    def dev(i: str, connected: bool, lease: str) -> DeviceSnapshot:
        return DeviceSnapshot(i, connected, "l1", {}, 0, 0, lease, 1 if lease else 0, 0)

    snap = Snapshot(
        at_us=1,
        plan_version=12,
        devices=[dev("a", True, "L1"), dev("b", True, ""), dev("c", False, "")],
        links=[LinkDelivery("l1", 10_000_000, 6_000_000, 5_000_000)],
        counters={"replans": 4, "leases_issued": 9, "replan_us": 250_000},
    )
    registry = CollectorRegistry()
    registry.register(StateCollector(None, lambda: snap))
    got = values(generate_latest(registry).decode())
    assert got[("vigil_scheduler_leases_active", ())] == 1
    assert got[("vigil_scheduler_agents_connected", ())] == 2
    assert got[("vigil_scheduler_plan_version", ())] == 12
    assert got[("vigil_scheduler_events_total", (("kind", "replans"),))] == 4
    assert got[("vigil_link_bits_per_second", (("link", "l1"), ("what", "planned")))] == 6e6
    assert got[("vigil_scheduler_replan_seconds_total", ())] == 0.25
    assert ("vigil_scheduler_events_total", (("kind", "replan_us"),)) not in got
    assert len(scheduler_families(snap)) == 6


def test_http_counters_keep_their_names_on_a_given_registry() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.inc("vigil_http_requests_total", family="api", status="200")
    metrics.inc("vigil_segment_bytes_total", 1234)
    text = generate_latest(registry).decode()
    assert 'vigil_http_requests_total{family="api",status="200"} 1.0' in text
    assert metrics.value("vigil_segment_bytes_total") == 1234
    with pytest.raises(KeyError):
        metrics.inc("vigil_made_up_total")


def test_readiness_names_every_failing_probe_and_scrubs_reasons() -> None:
    def boom() -> str | None:
        raise OSError("connect postgresql://vigil:hunter2@db:5432/vigil refused")

    assert check({"catalog": lambda: None}) == {}
    failing = check({"catalog": boom, "store": lambda: "gone", "broker": lambda: None})
    assert set(failing) == {"catalog", "store"}
    assert "hunter2" not in failing["catalog"] and "OSError" in failing["catalog"]
    assert failing["store"] == "gone"


def test_method_labels_are_short_and_bounded() -> None:
    assert short_method("/vigil.v1.Ingest/Upload") == "Ingest/Upload"
    assert short_method("/vigil.v1.AgentControl/StreamLeases") == "AgentControl/StreamLeases"
    assert short_method("odd") == "odd"
    assert [route_family(p) for p in ("/metrics", "/healthz", "/readyz", "/api/v1/x")] == [
        "metrics",
        "health",
        "health",
        "api",
    ]


def test_agent_textfile_parses_with_the_prometheus_parser() -> None:
    msg = fleet_pb2.Health(
        device_id='dev"1', buffer_bytes=5, segments_unsent=2, upload_rate_bps=300,
        cameras=[fleet_pb2.CameraHealth(camera_id="c\\1", connected=True, fps=12.5)],
    )  # fmt: skip
    got = values(render_textfile(msg))
    dev = (("device", 'dev"1'),)
    assert got[("vigil_agent_buffer_bytes", dev)] == 5
    assert got[("vigil_agent_segments", (*dev, ("state", "unsent")))] == 2
    assert got[("vigil_agent_camera_fps", (("camera", "c\\1"), *dev))] == 12.5


def test_json_log_lines_parse_and_carry_no_credentials() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for("json"))
    handler.addFilter(RedactingFilter())
    record = logging.LogRecord(
        "vigil.test", logging.ERROR, __file__, 1,
        "camera %s failed", ("rtsp://admin:s3cret@10.0.0.9/ch1",), None,
    )  # fmt: skip
    try:
        raise RuntimeError("open rtsp://admin:s3cret@10.0.0.9/ch1: 401")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert handler.filter(record)
    line = handler.format(record)
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "vigil.test"
    assert entry["msg"] == "camera rtsp://***@10.0.0.9/ch1 failed"
    assert "RuntimeError" in entry["exc"] and entry["ts"].endswith("Z")
    assert "s3cret" not in line and "\n" not in line
    assert isinstance(formatter_for("text"), logging.Formatter)
    assert not isinstance(formatter_for("text"), JsonFormatter)
    with pytest.raises(ValueError, match="text or json"):
        formatter_for("xml")
