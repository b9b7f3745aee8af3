"""The scheduler's upkeep records the class each committed segment was leased under, once,
on SQLite and PostgreSQL; a segment no lease named stays unclassified (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from controller.catalog import Catalog, make_engine
from controller.catalog.history import HistoryCatalog
from controller.catalog.models import Segment, SegmentRow
from controller.clock import ManualClock
from controller.jobs.store import JobStore
from controller.jobs.tracker import JobTracker
from controller.scheduler.upkeep import Upkeep

S = 1_000_000
START = 1_793_491_200 * S  # 2026-11-01 00:00 UTC


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


def test_the_upkeep_classifies_committed_leased_segments_once(engine: Engine) -> None:
    clock = ManualClock(START + 3600 * S)
    catalog = Catalog(engine, clock)
    catalog.upsert_device("nvr-1", "wudu", "wudu-01-01", "nvr")
    catalog.upsert_camera("cam", "nvr-1")
    catalog.add_segments(
        [
            SegmentRow(
                segment_id=f"cam-{i}",
                camera_id="cam",
                device_id="nvr-1",
                start_us=START + i * 10 * S,
                duration_us=10 * S,
                end_us=START + (i + 1) * 10 * S,
                size_bytes=100,
                sha256=f"{i:064x}",
                object_key=f"k/{i}",
                committed_at_us=START + (i + 1) * 10 * S + (5 + 100 * i) * S,
            )  # fmt: skip
            for i in range(3)
        ]
    )
    upkeep = Upkeep(catalog, clock, JobTracker(JobStore(engine), catalog, clock), None)
    probe = {"cam-0", "cam-1", "cam-2", "cam-7"}
    classes = {"cam-0": 1, "cam-1": 5, "cam-7": 4}  # cam-2: committed, in no lease
    result = upkeep.run(probe, frozenset(), {}, {}, classes)
    assert sorted(sid for _d, sid, _n, _at in result.committed) == ["cam-0", "cam-1", "cam-2"]
    upkeep.run(probe, frozenset(), {}, {}, {"cam-0": 5})  # a later round: no change
    with engine.connect() as conn:
        rows = conn.execute(select(col(Segment.segment_id), col(Segment.traffic_class))).all()
    assert sorted(rows) == [("cam-0", 1), ("cam-1", 5), ("cam-2", 0)]
    sums = HistoryCatalog(engine, clock).class_sums(START, START + 3600 * S)
    # cam-0 waited 5 s (≤ 10 s), cam-1 105 s (≤ 5 min).
    assert sums == {"cam": {1: [1, 0, 0, 0, 0, 0, 0, 0, 0], 5: [0, 0, 0, 1, 0, 0, 0, 0, 0]}}
    assert HistoryCatalog(engine, clock).class_sums(START, START + 3600 * S, ["other"]) == {}
