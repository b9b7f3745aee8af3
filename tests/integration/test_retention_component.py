"""`serve` runs the retention sweep periodically: the component deletes what the policy
expires (object and row together) and keeps running when a sweep fails."""

from __future__ import annotations

from pathlib import Path

from controller.catalog import Catalog, make_engine
from controller.clock import ManualClock
from controller.components import RetentionSweep
from controller.runtime import PeriodicTask
from controller.storage import LocalObjectStore
from tests.integration.test_retention_sweep import NOW, add
from tests.support import wait_until


def test_sweeper_deletes_expired_copies_on_its_interval(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    catalog = Catalog(engine, clock)
    catalog.upsert_device("dev1", "wudu", "v001", "nvr")
    catalog.upsert_camera("cam7", "dev1", retention_days=7)
    store = LocalObjectStore(tmp_path / "objects")
    rows = add(catalog, store, tmp_path, "cam7", [20.0, 10.0, 1.0, 0.0])
    sweeper = PeriodicTask("retention-sweep", 0.05, RetentionSweep(catalog, store, clock))
    sweeper.start()
    try:
        wait_until(lambda: catalog.get_segment(rows[0].segment_id) is None, 20, "first sweep")
    finally:
        sweeper.stop()
    assert catalog.get_segment(rows[1].segment_id) is None
    assert store.size(rows[0].object_key) is None and store.size(rows[1].object_key) is None
    kept = [r for r in rows[2:] if catalog.get_segment(r.segment_id) is not None]
    assert len(kept) == 2 and all(store.size(r.object_key) for r in kept)
    engine.dispose()


def test_a_failing_sweep_does_not_stop_the_component(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    runs: list[int] = []

    class Failing(RetentionSweep):
        def __call__(self) -> None:
            runs.append(1)
            raise RuntimeError("database unreachable")

    job = Failing(Catalog(engine, clock), LocalObjectStore(tmp_path / "o"), clock)
    sweeper = PeriodicTask("retention-sweep", 0.01, job)
    sweeper.start()
    try:
        wait_until(lambda: len(runs) >= 3, 10, "three sweeps despite each one failing")
    finally:
        sweeper.stop()
    engine.dispose()
