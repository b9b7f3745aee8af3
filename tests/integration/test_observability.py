"""Seeing inside a running controller and agent (issue 12, "See inside").

A real `vigil-controller serve` process (mutual-TLS gRPC, HTTP API, SQLite, local store, JSON
logs): /metrics is scraped after a real upload and parsed with prometheus_client's own text
parser; /healthz and /readyz answer, /readyz turns 503 with the failing dependency named when
the store directory disappears and 200 again when it is back; the standard gRPC health service
answers SERVING over the mTLS port. The agent's health reporter writes its textfile while its
broker is unreachable, and the file parses with the same parser.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from controller.assembly import Parts, build_controller
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.scheduler.wiring import options_from
from edge_agent.clock import SystemClock as AgentClock
from edge_agent.config import AgentConfig
from edge_agent.health.inputs import ReporterInputs
from edge_agent.health.payloads import SystemFigures
from edge_agent.health.reporter import HealthReporter
from edge_agent.health.textfile import FILE_NAME
from edge_agent.model import BufferStats, CameraStatus, EvictionRecord
from tests.integration.controller_proc import (
    ControllerProcess,
    Segment,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    upload,
)
from tests.integration.test_fleet_support import COUNTY, SITE, make_reporter, wait_online
from tests.support import free_port, wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, through prometheus_client's parser."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_health_and_json_logs_of_a_real_controller(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    ensure_keys(data)
    register(data, "dev1", ["cam1"])
    dev = issue_device(data, "dev1", tmp_path / "dev1")
    http_port = free_port()
    ctl = ControllerProcess(
        data,
        tmp_path,
        http={"enabled": True, "listen": f"127.0.0.1:{http_port}"},
        log_format="json",
    )
    ctl.start()
    try:
        assert ctl.proc is not None
        ctl.proc.wait_port(http_port, timeout=60)
        base = f"http://127.0.0.1:{http_port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            r = http.get("/readyz")
            assert r.status_code == 200 and r.json() == {"status": "ready"}, r.text

            before = samples(http.get("/metrics").text)
            assert before.get(("vigil_ingest_bytes_total", ()), 0.0) == 0.0
            channel = device_channel(ctl.port, dev)
            seg = Segment.make("cam1", size=700_000)
            reply = upload(ingest_stub(channel), seg)
            assert reply.sha256 == seg.sha256

            r = http.get("/metrics")
            assert r.status_code == 200
            after = samples(r.text)
            assert after[("vigil_ingest_bytes_total", ())] == len(seg.data)
            assert after[("vigil_ingest_segments_total", (("code", "OK"),))] == 1
            assert after[("vigil_ingest_upload_seconds_count", ())] == 1
            assert (
                after[("vigil_grpc_calls_total", (("code", "OK"), ("method", "Ingest/Upload")))]
                == 1
            )
            assert after[("process_resident_memory_bytes", ())] > 10 * 1024 * 1024
            # The HTTP API's counters live on the same registry (the earlier scrape counted).
            key = ("vigil_http_requests_total", (("family", "metrics"), ("status", "200")))
            assert after[key] >= 1

            # The standard gRPC health service over the real mutual-TLS port.
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            channel.close()

            # The store disappears (an unmounted disk): not ready, the store named.
            objects = data / "objects"
            objects.rename(data / "objects.away")
            objects.write_text("not a directory")
            r = http.get("/readyz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "not_ready" and set(body["failing"]) == {"store"}
            assert http.get("/healthz").status_code == 200  # alive all the same
            objects.unlink()
            (data / "objects.away").rename(objects)
            assert http.get("/readyz").status_code == 200
    finally:
        ctl.stop()

    lines = [line for line in ctl.log_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, not just ours, is JSON
    assert len(records) >= 3, lines[:20]
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any("gRPC (mutual TLS) listening" in r["msg"] for r in records)
    text = "\n".join(lines)
    assert "PRIVATE KEY" not in text


class Buffer:
    """A buffer view with fixed figures (the reporter only reads them)."""

    def stats(self) -> BufferStats:
        return BufferStats(
            total_bytes=12_345_678,
            quota_bytes=10**10,
            unsent_segments=7,
            unsent_bytes=7_000_000,
            uploaded_segments=40,
            uploaded_bytes=40_000_000,
            held_segments=2,
            oldest_unsent_start_us=AgentClock().now_us() - 90_000_000,
        )

    def evictions(self, only_unreported: bool = True) -> list[EvictionRecord]:
        return []

    def mark_evictions_reported(self, record_ids: object) -> None:
        return None


def test_agent_writes_a_parsable_textfile_while_its_broker_is_unreachable(tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {
            "device_id": "dev-7",
            "data_dir": str(tmp_path / "agent"),
            "mqtt": {"host": "127.0.0.1", "port": free_port(), "health_interval_s": 1.0},
        }
    )
    cams = [
        CameraStatus("cam-a", connected=True, fps=25.0, bitrate_bps=4_000_000),
        CameraStatus("cam-b", connected=False),
    ]
    inputs = ReporterInputs(
        statuses=lambda: cams,
        buffer=Buffer(),
        upload_rate_bps=lambda: 2_500_000,
        system=lambda: SystemFigures(3.0, 40.0, 10**9, 10**10),
    )
    reporter = HealthReporter(config, AgentClock(), inputs, agent_version="test")
    path = tmp_path / "agent" / "metrics" / FILE_NAME
    reporter.start()
    try:
        deadline = time.monotonic() + 15
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.exists(), "no textfile written"
        first = path.stat().st_mtime_ns
        deadline = time.monotonic() + 15
        while path.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.stat().st_mtime_ns != first, "textfile not rewritten on the interval"
    finally:
        reporter.stop()
    got = samples(path.read_text())
    dev = (("device", "dev-7"),)
    assert got[("vigil_agent_buffer_bytes", dev)] == 12_345_678
    assert got[("vigil_agent_segments", (*dev, ("state", "unsent")))] == 7
    assert got[("vigil_agent_upload_bits_per_second", dev)] == 2_500_000
    assert 89 <= got[("vigil_agent_oldest_unsent_age_seconds", dev)] < 200
    cam_a = (("camera", "cam-a"), *dev)
    assert got[("vigil_agent_camera_fps", cam_a)] == 25.0
    assert got[("vigil_agent_camera_bits_per_second", cam_a)] == 4_000_000
    assert got[("vigil_agent_camera_connected", (("camera", "cam-b"), *dev))] == 0
    leftovers = [p.name for p in path.parent.iterdir() if p.name != FILE_NAME]
    assert leftovers == []  # the temporary files were all renamed into place


def test_fleet_and_scheduler_metrics_and_readyz_follow_the_broker(tmp_path: Path) -> None:
    """A controller with its managed Mosquitto, the scheduler and the HTTP API, in this
    process: a real agent reporter comes online and shows in /metrics; when the broker dies,
    /readyz names it."""
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    ensure_keys(data)
    register(data, "nvr-obs", ["cam1"], county=COUNTY, site=SITE)
    mqtt_port, http_port = free_port(), free_port()
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "grpc": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "managed", "port": mqtt_port},
            "http": {"listen": f"127.0.0.1:{http_port}"},
        }
    )
    parts = Parts(fleet=True, http=True, scheduler=options_from(config.scheduler))
    controller = build_controller(config, SystemClock(), parts)
    controller.start()
    reporter = None
    try:
        fleet = controller.fleet
        assert fleet is not None and fleet.service.wait_connected(10)
        fleet.add_device_account("nvr-obs", "pw-obs")
        reporter = make_reporter(mqtt_port, "nvr-obs", "pw-obs")
        wait_online(fleet.service, "nvr-obs")
        sched = controller.scheduler
        assert sched is not None
        sched.poke()
        wait_until(lambda: sched.counters["replans"] >= 1, 15, "a replan")
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as http:
            r = http.get("/readyz")
            assert r.status_code == 200, r.text
            got = samples(http.get("/metrics").text)
            assert got[("vigil_devices", (("county", COUNTY), ("state", "online")))] == 1
            assert got[("vigil_cameras_online", (("county", COUNTY),))] == 1
            assert sum(v for (n, _), v in got.items() if n == "vigil_mqtt_messages_total") >= 2
            assert ("vigil_scheduler_leases_active", ()) in got
            assert ("vigil_scheduler_plan_version", ()) in got
            assert got[("vigil_scheduler_events_total", (("kind", "replans"),))] >= 1
            assert got[("vigil_scheduler_replan_seconds_total", ())] > 0
            assert fleet.broker is not None
            fleet.broker.stop()
            wait_until(lambda: http.get("/readyz").status_code == 503, 15, "not ready")
            body = http.get("/readyz").json()
            assert set(body["failing"]) == {"broker"}, body
            assert http.get("/healthz").status_code == 200
    finally:
        if reporter is not None:
            reporter.stop()
        controller.stop(0)
