"""The replicas' fleet tables on SQLite and PostgreSQL: newest health wins, alerts replace
and clear, one share group for every replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from controller.catalog.db import make_engine
from controller.fleet.alerts import Alert
from controller.fleet.shared import HealthRow, SharedFleetState


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    try:
        yield eng
    finally:
        eng.dispose()


def row(device: str, session: int, seq: int, seen: int) -> HealthRow:
    return HealthRow(device, session, seq, seen, 0.0, f"{session}:{seq}".encode())


def test_newest_report_wins_whoever_writes_last(engine: Engine) -> None:
    a, b = SharedFleetState(engine, "a"), SharedFleetState(engine, "b")
    a.write_health([row("d1", 5, 7, 100), row("d2", 5, 1, 100)])
    b.write_health([row("d1", 5, 6, 200), row("d2", 6, 1, 200)])  # d1 older, d2 newer session
    seen_by_a = {r.device_id: r for r in a.health_since(0)}
    assert set(seen_by_a) == {"d2"}  # a's own d1 row stayed; only b's d2 row is news to a
    assert seen_by_a["d2"].payload == b"6:1"
    seen_by_b = {r.device_id: r for r in b.health_since(0)}
    assert seen_by_b["d1"].payload == b"5:7" and seen_by_b["d1"].seen_us == 100
    assert b.health_since(150) == []  # d1 (seen 100) is older than the cursor


def test_alerts_raised_replaced_and_cleared(engine: Engine) -> None:
    s = SharedFleetState(engine, "a")
    x = Alert("d1", "disk_low", "", "1 byte free", 10)
    y = Alert("d1", "camera_stale", "cam1", "no frame", 11)
    s.apply_alerts([x, y], [], epoch=3)
    assert s.alerts() == [y, x]  # ordered by device, kind, camera
    s.apply_alerts([Alert("d1", "disk_low", "", "2 bytes free", 12)], [y.key], epoch=4)
    assert s.alerts() == [Alert("d1", "disk_low", "", "2 bytes free", 12)]


def test_one_share_group_for_every_replica(engine: Engine) -> None:
    first = SharedFleetState(engine, "a").share_group()
    assert first.startswith("vigil-controllers-") and len(first) > 30
    assert SharedFleetState(engine, "b").share_group() == first


def test_an_older_leadership_cannot_write_alerts_after_a_newer_one_claimed_them(
    engine: Engine,
) -> None:
    old, new = SharedFleetState(engine, "a"), SharedFleetState(engine, "b")
    x = Alert("d1", "disk_low", "", "1 byte free", 10)
    assert old.claim_alerts(4)
    assert old.apply_alerts([x], [], epoch=4)
    assert new.claim_alerts(5)
    late = Alert("d2", "device_offline", "", "offline", 20)
    assert not old.apply_alerts([late], [x.key], epoch=4)  # the old leader had not noticed
    assert not old.replace_alerts([], epoch=4)
    assert not old.claim_alerts(4)
    assert new.alerts() == [x]


def test_replace_alerts_makes_the_table_the_leaders_active_set(engine: Engine) -> None:
    s = SharedFleetState(engine, "a")
    x = Alert("d1", "disk_low", "", "1 byte free", 10)
    y = Alert("d2", "camera_stale", "cam1", "no frame", 11)
    assert s.apply_alerts([x], [], epoch=1)
    assert s.replace_alerts([y], epoch=1)
    assert s.alerts() == [y]
