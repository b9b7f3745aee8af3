"""The scheduler follows the leadership: nothing on a follower, a fresh start in every term.

A real SchedulerService on a real catalog (SQLite), driven tick by tick; the leadership is a
switch the test flips (the election itself is tested against PostgreSQL in
test_leader_election.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.leader import NotLeaderError
from controller.scheduler.mailbox import Mailbox
from controller.scheduler.service import SchedulerService
from protos.vigil.v1 import agent_control_pb2
from tests.integration.test_agent_control import inventory
from tests.integration.test_agent_control_support import FAST


class Switch:
    """A leadership the test sets: epoch > 0 leads."""

    def __init__(self, epoch: int = 0) -> None:
        self.term = epoch

    def is_leader(self) -> bool:
        return self.term > 0

    def epoch(self) -> int:
        return self.term

    def leader_address(self) -> str:
        return "" if self.term else "10.0.0.9:7443"


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield Catalog(engine, SystemClock())
    engine.dispose()


def lease_of(box: Mailbox[agent_control_pb2.Lease]) -> str:
    msg = box.take(0.1)
    assert msg is not None, "no lease message"
    return msg.lease_id


def test_a_follower_hands_out_nothing_and_refuses_agents(catalog: Catalog) -> None:
    lead = Switch(0)
    svc = SchedulerService(catalog, SystemClock(), FAST, leadership=lead)
    with pytest.raises(NotLeaderError, match=r"10\.0\.0\.9:7443"):
        svc.connect("dev1")
    with pytest.raises(NotLeaderError):
        svc.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
    with pytest.raises(NotLeaderError):
        svc.finish_lease("dev1", agent_control_pb2.LeaseReport(lease_id="x"))
    for _ in range(3):
        svc.tick()
    assert svc.counters["replans"] == 0 and svc.counters["upkeeps"] == 0
    assert svc.connected() == frozenset() and svc.snapshot().devices == []


def test_leases_stop_when_the_term_ends_and_restart_empty_in_the_next(catalog: Catalog) -> None:
    lead = Switch(3)
    svc = SchedulerService(catalog, SystemClock(), FAST, leadership=lead)
    box = svc.connect("dev1")
    svc.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
    svc.tick()
    first = lease_of(box)
    assert first and svc.lease("dev1") is not None
    assert svc.counters["upkeeps"] == 1

    lead.term = 0  # the lease row went to another replica
    svc.tick()
    assert box.closed, "a follower must close its lease streams (agents go to the leader)"
    assert svc.connected() == frozenset() and svc.lease("dev1") is None
    replans = svc.counters["replans"]
    svc.tick()
    assert svc.counters["replans"] == replans

    lead.term = 5  # leads again, in a new term: nothing of the old one survives
    box2 = svc.connect("dev1")
    assert svc.lease("dev1") is None and svc.snapshot().devices[0].planned_bps == 0
    svc.tick()
    assert box2.take(0.1) is not None  # holds message at connect, no lease without inventory
    assert svc.lease("dev1") is None
    svc.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
    svc.tick()
    second = lease_of(box2)
    assert second and second != first
    assert svc.counters["terms"] == 1 and svc.counters["upkeeps"] == 2


def test_a_new_epoch_without_a_gap_also_starts_afresh(catalog: Catalog) -> None:
    lead = Switch(1)
    svc = SchedulerService(catalog, SystemClock(), FAST, leadership=lead)
    box = svc.connect("dev1")
    svc.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
    svc.tick()
    assert lease_of(box)
    lead.term = 2  # lost and regained between two ticks: the old leases may be void
    svc.tick()
    assert box.closed and svc.connected() == frozenset()


def test_a_sole_leader_never_resets(catalog: Catalog) -> None:
    svc = SchedulerService(catalog, SystemClock(), FAST)  # no leadership: alone, epoch 1
    box = svc.connect("dev1")
    svc.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
    for _ in range(3):
        svc.tick()
    assert not box.closed and lease_of(box)
    assert svc.counters["terms"] == 0
