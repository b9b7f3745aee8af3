"""Eviction reports survive the controller: kill -9, a persistent broker session, resends.

Real parts: the private Mosquitto of the fixtures (password file, fleet ACL), the agent's
HealthReporter in this process, and the controller's fleet service + history writer on a
SQLite catalog in a subprocess (tests/integration/loss_controller.py) killed with SIGKILL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from controller.catalog import make_engine
from controller.catalog.history_models import CameraHour, LossEvent
from edge_agent.clock import SystemClock as AgentClock
from edge_agent.health.evictions import EvictionReports
from edge_agent.health.inputs import ReporterInputs
from edge_agent.health.reporter import HealthReporter
from edge_agent.model import EvictionRecord
from tests.fixtures.mosquitto import Broker
from tests.integration.test_fleet_support import FakeBuffer, agent_config, camera_ok
from tests.support import ManagedProcess, wait_until

DEVICE = "nvr-loss"
S = 1_000_000
T0 = (time.time_ns() // 1000) // (3600 * S) * (3600 * S) - 3600 * S  # a whole past hour


class Controller:
    """The fleet + history process; `start()` again after `kill9()` (same account, same db)."""

    def __init__(self, broker: Broker, tmp: Path) -> None:
        self.broker, self.tmp, self.db = broker, tmp, tmp / "catalog.db"
        self.secret = broker.password_file_for("controller", broker.controller_password)
        self.proc: ManagedProcess | None = None
        self.runs = 0

    def start(self, flush_s: float) -> None:
        self.runs += 1
        log = self.tmp / f"controller-{self.runs}.log"
        argv = [sys.executable, "-m", "tests.integration.loss_controller", str(self.broker.port)]
        argv += [self.broker.controller_user, str(self.secret), str(self.db), str(flush_s), DEVICE]
        self.proc = ManagedProcess(argv, log)
        proc = self.proc

        def connected() -> bool:
            assert proc.alive(), proc.log_text()
            return "connected" in proc.log_text()

        wait_until(connected, 30, "controller connected to the broker")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill9()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def evicted(record_id: int, start_s: int) -> EvictionRecord:
    start = T0 + start_s * S
    return EvictionRecord(
        record_id, f"seg-{record_id}", "cam1", start, start + 10 * S, 1000, False, start, False
    )


def losses(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(LossEvent.fact_id, LossEvent.size_bytes)).all()  # type: ignore[call-overload]
    return sorted((r[0], r[1]) for r in rows)


def agent(
    mosquitto: Broker, password: str, buffer: FakeBuffer, reports: EvictionReports
) -> HealthReporter:
    """The agent's reporter on `buffer`'s evictions (one camera, streaming)."""
    return HealthReporter(
        agent_config(DEVICE, mosquitto.port),
        AgentClock(),
        ReporterInputs(statuses=lambda: [camera_ok()], buffer=buffer),
        agent_version="test",
        password=password,
        losses=reports,
    )


@pytest.fixture
def controller(mosquitto: Broker, tmp_path: Path) -> Iterator[Controller]:
    ctl = Controller(mosquitto, tmp_path)
    try:
        yield ctl
    finally:
        ctl.stop()


def test_evictions_reach_the_catalog_across_controller_kills(
    mosquitto: Broker, controller: Controller
) -> None:
    password = mosquitto.add_device(DEVICE)
    buffer = FakeBuffer()
    buffer.pending_evictions = [evicted(1, 0)]
    reports = EvictionReports(resend_s=60.0)
    reporter = agent(mosquitto, password, buffer, reports)
    controller.start(flush_s=0.2)
    reporter.start()
    try:
        # 1. Up: recorded, then confirmed: only now is it reported in the agent's buffer.
        wait_until(lambda: buffer.reported == [1], 15, "eviction 1 confirmed by the controller")
        engine = make_engine(str(controller.db))
        assert losses(engine) == [("seg-1", 1000)]

        # 2. Controller killed; an eviction meanwhile: published, kept by the broker for the
        # controller's persistent session. The next controller receives it (and PUBACKs it)
        # but is killed before its batched write (30 s): only the agent's resend saves it.
        controller.kill9()
        buffer.pending_evictions.append(evicted(2, 10))
        wait_until(lambda: reports.sent_total >= 2, 10, "eviction 2 published")
        controller.start(flush_s=30.0)
        time.sleep(1.5)  # eviction 2 delivered from the session, held in the 30 s batch
        controller.kill9()
        assert losses(engine) == [("seg-1", 1000)] and buffer.reported == [1]

        # 3. Another eviction while no controller runs: the broker's session delivers it to
        # the next one (no resend: the agent waits 60 s) ...
        buffer.pending_evictions.append(evicted(3, 20))
        wait_until(lambda: reports.sent_total >= 3, 10, "eviction 3 published")
        controller.start(flush_s=0.2)
        wait_until(lambda: 3 in buffer.reported, 15, "eviction 3 confirmed after the restart")
        assert 2 not in buffer.reported and reports.resent_total == 0
        # ... while eviction 2, PUBACKed by a controller that died, comes back by a resend.
        reports.resend_s = 1.0
        wait_until(lambda: 2 in buffer.reported, 15, "eviction 2 confirmed after a resend")
        assert reports.resent_total >= 1 and sorted(buffer.reported) == [1, 2, 3]

        # Every report once, whatever the deliveries: the hour shows 30 s evicted.
        assert losses(engine) == [("seg-1", 1000), ("seg-2", 1000), ("seg-3", 1000)]
        with engine.connect() as conn:
            hour = conn.execute(select(CameraHour).where(CameraHour.camera_id == "cam1")).one()  # type: ignore[arg-type]
        assert (hour.evicted_us, hour.evicted_bytes) == (30 * S, 3000)
        engine.dispose()
    finally:
        reporter.stop()


def test_a_long_outage_s_backlog_is_stored_without_a_resend(
    mosquitto: Broker, controller: Controller
) -> None:
    """300 evictions made while the controller was away go out in batched messages (50
    facts each, 200 a step) within the per-device rate limit: every one stored and confirmed
    on the first sending (before batches, 20 messages a step and the flood limit made the
    extras wait for the next resend)."""
    password = mosquitto.add_device(DEVICE)
    buffer = FakeBuffer()
    buffer.pending_evictions = [evicted(i, 10 * i) for i in range(1, 301)]
    reports = EvictionReports(resend_s=600.0)
    reporter = agent(mosquitto, password, buffer, reports)
    controller.start(flush_s=0.2)
    reporter.start()
    try:
        wait_until(lambda: len(buffer.reported) == 300, 30, "300 evictions confirmed")
        assert reports.resent_total == 0 and reports.sent_total == 300
        engine = make_engine(str(controller.db))
        try:
            assert [f for f, _n in losses(engine)] == sorted(f"seg-{i}" for i in range(1, 301))
        finally:
            engine.dispose()
    finally:
        reporter.stop()
