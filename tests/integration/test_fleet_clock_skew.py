"""An agent whose clock is 10 s ahead: measured over RPC, alerted, and its segments flagged.

Real components: the controller in this process with the scheduler wired as `serve` wires it
(gRPC with mutual TLS, SQLite catalog, local object store), the agent's real leased uplink
(`leased_uplink`: buffer, uploader, lease client) and MQTT health reporter, a private
Mosquitto and the real FleetService. Only the agent's wall clock is shifted (`ShiftedClock`),
as on an NVR whose clock was set by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api.routes.catalog import agent_flag_names
from controller.fleet.alerts import Alert
from controller.fleet.service import FleetService
from edge_agent.clock import ClockOffset, ShiftedClock, SystemClock
from edge_agent.config import parse_config
from edge_agent.health.inputs import ReporterInputs
from edge_agent.health.reporter import HealthReporter
from edge_agent.leases.wiring import leased_uplink
from edge_agent.model import AgentEvent, SegmentFlag
from edge_agent.store import SegmentBuffer
from protos.vigil.v1 import fleet_pb2
from tests.fixtures.mosquitto import Broker
from tests.integration.test_agent_control_support import FAST_AGENT, scheduled_controller
from tests.integration.test_fleet_support import COUNTY, SITE, record, start_service, wait_online
from tests.integration.test_uplink_support import (
    QUOTA,
    Site,
    catalog_rows,
    make_site,
    open_catalog,
    uplink_config,
    write_segments,
)
from tests.support import wait_until

DEVICE = "dev1"
SKEW_US = 10_000_000


@pytest.fixture
def fleet(mosquitto: Broker) -> Iterator[FleetService]:
    service = start_service(mosquitto, [DEVICE])  # default rules: clock_skew_s = 2
    yield service
    service.stop()


def clock_alert(fleet: FleetService) -> Alert | None:
    return next((a for a in fleet.alerts(DEVICE) if a.kind == "clock_skew"), None)


def test_skewed_agent_clock_raises_clock_skew_and_flags_segments(
    mosquitto: Broker, fleet: FleetService, tmp_path: Path
) -> None:
    site: Site = make_site(tmp_path, cameras=("cam1",), device=DEVICE)
    clock = ShiftedClock(SystemClock(), SKEW_US)  # the NVR is 10 s ahead of the city
    offset = ClockOffset(clock)
    buffer = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, clock)
    buffer.set_clock_check(offset.skewed)
    # Before any measure the clock is not known to be off: no flag.
    before = write_segments(buffer, "cam1", 2, size=20_000)
    assert all(s.flags == SegmentFlag.NONE for s in before)

    password = mosquitto.add_device(DEVICE)
    config = parse_config(
        f'device_id = "{DEVICE}"\ncounty = "{COUNTY}"\nsite = "{SITE}"\n'
        f'data_dir = "{tmp_path}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        "health_interval_s = 1\n",
        "test",
    )
    reporter = HealthReporter(
        config,
        clock,
        ReporterInputs(statuses=lambda: [], buffer=buffer, clock_skew=offset.estimate),
        agent_version="test",
        password=password,
    )
    events: list[AgentEvent] = []
    with scheduled_controller(site.data_dir) as ctl:
        uploader, leases = leased_uplink(
            DEVICE,
            uplink_config(ctl.port, site.device),
            buffer,
            clock,
            events.append,
            cameras=["cam1"],
            options=FAST_AGENT,
            clock_offset=offset,
        )
        uploader.start()
        leases.start()
        reporter.start()
        try:
            wait_until(lambda: offset.estimate() is not None, 15, "a clock sample from the RPC")
            est = offset.estimate()
            assert est is not None
            # Loopback: the round trip bounds the error to milliseconds.
            assert abs(est.skew_us - SKEW_US) <= est.error_us + 1000, est
            assert est.error_us < 500_000 and offset.skewed()

            after = write_segments(buffer, "cam1", 2, size=20_000)
            assert all(s.flags & SegmentFlag.CLOCK_SKEW for s in after)

            # The controller's fleet view: the agent's measure in health, and the alert.
            wait_online(fleet, DEVICE)
            wait_until(lambda: clock_alert(fleet) is not None, 15, "the clock_skew alert")
            alert = clock_alert(fleet)
            # Raised by whichever measure came first: the agent's RPC measure, or the health
            # timestamp's age on arrival before the agent had one (both say 10 s).
            assert alert is not None and "10.0 s" in alert.detail, alert
            wait_until(
                lambda: (record(fleet, DEVICE).health or fleet_pb2.Health()).clock_offset_known,
                15,
                "the agent's measured offset in health",
            )
            health = record(fleet, DEVICE).health
            assert health is not None
            assert health.clock_offset_ms == pytest.approx(10_000, abs=500)
            assert 0 <= health.clock_offset_error_ms < 500

            # The flagged segments travel to the catalog; the API names the flag.
            wait_until(lambda: buffer.stats().unsent_segments == 0, 30, "every segment uploaded")
        finally:
            reporter.stop()
            leases.stop()
            uploader.stop()
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = catalog_rows(catalog, ("cam1",))
    finally:
        engine.dispose()
    flagged = {sid for sid, row in rows.items() if row.agent_flags & SegmentFlag.CLOCK_SKEW}
    assert flagged == {s.segment_id for s in after}
    assert agent_flag_names(rows[after[0].segment_id].agent_flags) == ["clock_skew"]
    assert agent_flag_names(rows[before[0].segment_id].agent_flags) == []
    buffer.close()
