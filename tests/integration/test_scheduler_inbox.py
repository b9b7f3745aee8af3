"""A report never waits for the scheduler's lock (controller/scheduler/service.py): an
inventory is checked by the caller and recorded by whoever takes the lock next, in arrival
order, so a replan holding the lock does not delay the agent's call, and anyone who reads
the desk afterwards sees the report.

A real SchedulerService on a real catalog (SQLite), driven tick by tick; the lock is held by
the test as a long replan would hold it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.scheduler.model import DemandError
from controller.scheduler.service import SchedulerService
from protos.vigil.v1 import agent_control_pb2
from tests.integration.test_agent_control import inventory
from tests.integration.test_agent_control_support import FAST


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield Catalog(engine, SystemClock())
    engine.dispose()


def timed(inv: agent_control_pb2.Inventory) -> agent_control_pb2.Inventory:
    """With durations (what `unsent` lists: the agent's stored footage)."""
    for ref in inv.unsent:
        ref.duration_us = 10_000_000
    return inv


def test_a_report_is_answered_while_a_replan_holds_the_lock_and_planned_after(
    catalog: Catalog,
) -> None:
    svc = SchedulerService(catalog, SystemClock(), FAST)
    box = svc.connect("dev1")
    box.take(0.1)  # the first (empty) message
    lock: threading.Lock = svc._lock  # what a replan holds
    with ThreadPoolExecutor(1) as pool:
        with lock:
            first = pool.submit(
                svc.report_inventory, "dev1", timed(inventory("dev1", ("s1", "cam1", 500_000)))
            )
            first.result(timeout=5)  # answered though the lock is held
            later = timed(inventory("dev1", ("s1", "cam1", 500_000), ("s2", "cam1", 400_000)))
            pool.submit(svc.report_inventory, "dev1", later).result(timeout=5)
            bad = inventory("dev1", ("s3", "cam1", 100))
            bad.backlog[0].bytes = 1  # its backlog does not cover its segments
            with pytest.raises(DemandError):
                pool.submit(svc.report_inventory, "dev1", bad).result(timeout=5)
            assert svc.counters["inventories"] == 0  # not recorded yet
    # The next to take the lock records both, in order; the bad one changed nothing.
    assert len(svc.unsent("dev1", "cam1")) == 2
    assert svc.counters["inventories"] == 2 and svc.counters["refused"] == 1
    svc.tick()
    msg = box.take(1.0)
    assert msg is not None and {s.segment_id for s in msg.segments} <= {"s1", "s2"}
    assert msg.lease_id and svc.lease("dev1") is not None
