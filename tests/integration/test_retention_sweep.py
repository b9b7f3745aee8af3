"""Cloud retention with a real catalog (SQLite and PostgreSQL) and a real store (local, S3)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.catalog import SEGMENT_DELETING, Catalog, SegmentRow, make_engine
from controller.clock import ManualClock
from controller.retention import (
    DAY_US,
    REASON_EXPIRED,
    REASON_ORPHAN,
    delete_orphan_objects,
    find_orphans,
    sweep_retention,
)
from controller.storage import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    StorageError,
    object_key,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
NOW = T0 + 60 * DAY_US
SEG_US = 10_000_000
MIB = 1024 * 1024


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def catalog(catalog_url: str, clock: ManualClock) -> Iterator[Catalog]:
    engine = make_engine(catalog_url)
    cat = Catalog(engine, clock)
    cat.upsert_device("dev1", "wudu", "v001", "nvr")
    cat.upsert_camera("cam7", "dev1", retention_days=7)
    cat.upsert_camera("cam30", "dev1")  # the default policy
    cat.upsert_camera("idle", "dev1")  # stopped uploading long ago
    yield cat
    engine.dispose()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    sw = request.getfixturevalue("seaweedfs")
    return S3ObjectStore(sw.endpoint_url, sw.new_bucket_name(), sw.access_key, sw.secret_key)


def add(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, camera: str, ends_days_ago: list[float]
) -> list[SegmentRow]:
    """One small segment per entry, ending that many days before NOW: object, then row."""
    rows = []
    for n, days in enumerate(ends_days_ago):
        end = NOW - int(days * DAY_US)
        start = end - SEG_US
        segment_id = f"{camera}-{n:04d}"
        data = f"{segment_id} payload".encode()
        src = tmp_path / "seg.ts"
        src.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        key = object_key("wudu", "v001", camera, start, segment_id)
        store.put_file(key, src, sha)
        rows.append(
            SegmentRow(
                segment_id=segment_id,
                camera_id=camera,
                device_id="dev1",
                start_us=start,
                duration_us=SEG_US,
                end_us=end,
                size_bytes=len(data),
                sha256=sha,
                object_key=key,
            )
        )
    catalog.add_segments(rows)
    return rows


def populate(catalog: Catalog, store: ObjectStore, tmp_path: Path) -> dict[str, list[SegmentRow]]:
    days = [float(d) for d in range(40, -1, -1)]  # ends 40 .. 0 days ago, oldest first
    return {
        "cam7": add(catalog, store, tmp_path, "cam7", days),
        "cam30": add(catalog, store, tmp_path, "cam30", days),
        "idle": add(catalog, store, tmp_path, "idle", [50.0, 49.0, 48.0]),
    }


def expected_deletions(rows: dict[str, list[SegmentRow]]) -> set[str]:
    policy = {"cam7": 7, "cam30": 30, "idle": 30}
    out = set()
    for camera, segs in rows.items():
        newest = max(segs, key=lambda s: s.start_us)
        for s in segs:
            if s.end_us <= NOW - policy[camera] * DAY_US and s is not newest:
                out.add(s.segment_id)
    return out


def assert_consistent(catalog: Catalog, store: ObjectStore) -> None:
    """No object without a row, no stored row without its object (sizes match)."""
    for camera in ("cam7", "cam30", "idle"):
        report = find_orphans(catalog, store, camera)
        assert report.objects_without_row == (), report
        assert report.rows_without_object == (), report
        for seg in catalog.segments_in_range(camera, 0, NOW + DAY_US):
            assert store.size(seg.object_key) == seg.size_bytes


def all_segment_ids(catalog: Catalog) -> set[str]:
    return {
        s.segment_id
        for camera in ("cam7", "cam30", "idle")
        for s in catalog.segments_in_range(camera, 0, NOW + DAY_US)
    }


class FailingStore:
    """The real store, except that deletes fail (store outage) after `ok_deletes` of them."""

    def __init__(self, real: ObjectStore, ok_deletes: int) -> None:
        self.real = real
        self.remaining = ok_deletes

    def delete(self, key: str) -> None:
        if self.remaining <= 0:
            raise StorageError(f"delete {key}: EndpointConnectionError: store unreachable")
        self.remaining -= 1
        self.real.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class Crash(BaseException):
    """The controller dying (kill -9, power cut): nothing after it runs."""


class CrashingStore(FailingStore):
    """Deletes `ok_deletes` objects, then dies right AFTER deleting the next one."""

    def delete(self, key: str) -> None:
        self.real.delete(key)
        if self.remaining <= 0:
            raise Crash(key)
        self.remaining -= 1


def test_expired_objects_and_rows_are_deleted_together_and_recorded(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    expected = expected_deletions(rows)
    assert len(expected) == 34 + 11 + 2  # 7-day camera, 30-day camera, idle minus its anchor
    before = all_segment_ids(catalog)
    report = sweep_retention(catalog, store, clock, batch=7)
    assert report.complete, report.errors
    assert set(report.deleted) == expected and len(report.deleted) == len(expected)
    assert report.anchors >= 1  # the idle camera keeps its newest segment
    assert all_segment_ids(catalog) == before - expected
    by_id = {s.segment_id: s for segs in rows.values() for s in segs}
    for sid in expected:
        assert store.size(by_id[sid].object_key) is None
        assert catalog.get_segment(sid) is None
    assert catalog.get_segment("idle-0002") is not None  # the anchor
    records = catalog.retention_records()
    assert sorted(r.segment_id for r in records) == sorted(expected)
    for r in records:
        seg = by_id[r.segment_id]
        assert (r.object_key, r.sha256, r.size_bytes, r.start_us, r.end_us) == (
            seg.object_key,
            seg.sha256,
            seg.size_bytes,
            seg.start_us,
            seg.end_us,
        )
        assert r.reason == REASON_EXPIRED and r.deleted_at_us == NOW and "days" in r.detail
    assert report.deleted_bytes == sum(by_id[s].size_bytes for s in expected)
    assert_consistent(catalog, store)
    again = sweep_retention(catalog, store, clock)
    assert again.complete and again.deleted == []
    assert len(catalog.retention_records()) == len(expected)


def test_held_ranges_are_kept_until_released(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    held = rows["cam30"][2:5]  # ended 38, 37, 36 days ago
    hold_id = catalog.add_hold("cam30", held[0].start_us, held[-1].end_us, "case-0042")
    report = sweep_retention(catalog, store, clock)
    assert report.complete and report.held == 3
    for seg in held:
        assert catalog.get_segment(seg.segment_id) is not None
        assert store.size(seg.object_key) == seg.size_bytes
    assert not {s.segment_id for s in held} & set(report.deleted)
    clock.advance(3600)
    assert sweep_retention(catalog, store, clock).deleted == []  # still held
    assert catalog.release_hold(hold_id)
    report = sweep_retention(catalog, store, clock)
    assert sorted(report.deleted) == sorted(s.segment_id for s in held)
    for seg in held:
        assert store.size(seg.object_key) is None and catalog.get_segment(seg.segment_id) is None
    assert_consistent(catalog, store)


def test_store_outage_mid_sweep_leaves_both_consistent_and_a_rerun_completes(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    expected = expected_deletions(rows)
    failing = FailingStore(store, ok_deletes=5)
    report = sweep_retention(catalog, failing, clock, batch=10)
    assert not report.complete
    assert "store unreachable" in report.errors[0]
    assert len(report.deleted) == 5
    pending = catalog.deleting_segments()
    assert len(pending) == 5  # the rest of the marked page waits for the next run
    for seg in pending:  # still there, hidden from playback meanwhile
        assert store.size(seg.object_key) == seg.size_bytes
        found = catalog.segments_in_range(seg.camera_id, seg.start_us, seg.end_us)
        assert seg.segment_id not in {s.segment_id for s in found}
    assert_consistent(catalog, store)
    rerun = sweep_retention(catalog, store, clock, batch=10)
    assert rerun.complete and rerun.resumed == 5
    assert set(report.deleted) | set(rerun.deleted) == expected
    assert catalog.deleting_segments() == []
    records = [r.segment_id for r in catalog.retention_records()]
    assert sorted(records) == sorted(expected)  # each deletion recorded exactly once
    assert_consistent(catalog, store)


def test_crash_after_an_object_delete_is_finished_by_the_next_run(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    expected = expected_deletions(rows)
    with pytest.raises(Crash) as crash:
        sweep_retention(catalog, CrashingStore(store, ok_deletes=2), clock, batch=10)
    victim = str(crash.value)
    pending = {s.object_key: s for s in catalog.deleting_segments()}
    assert victim in pending  # row says "deleting", object is already gone
    assert store.size(victim) is None
    assert catalog.retention_records() == []  # the crash came before any row was finished
    rerun = sweep_retention(catalog, store, clock, batch=10)
    assert rerun.complete and rerun.resumed == len(pending)
    assert set(rerun.deleted) == expected
    assert sorted(r.segment_id for r in catalog.retention_records()) == sorted(expected)
    assert_consistent(catalog, store)


def test_interrupted_deletion_of_a_newly_held_segment_is_undone(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    with pytest.raises(Crash):
        sweep_retention(catalog, CrashingStore(store, ok_deletes=0), clock, batch=10)
    pending = catalog.deleting_segments()
    survivor = next(s for s in pending if store.size(s.object_key) is not None)
    catalog.add_hold(survivor.camera_id, survivor.start_us, survivor.end_us, "late-case")
    rerun = sweep_retention(catalog, store, clock, batch=10)
    assert rerun.complete and rerun.restored == 1
    kept = catalog.get_segment(survivor.segment_id)
    assert kept is not None and kept.state == "stored"
    assert store.read_bytes(survivor.object_key) == f"{survivor.segment_id} payload".encode()
    assert set(rerun.deleted) == expected_deletions(rows) - {survivor.segment_id}
    assert_consistent(catalog, store)


def test_orphans_are_reported_and_only_old_unheld_objects_removed(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = populate(catalog, store, tmp_path)
    src = tmp_path / "orphan.ts"
    src.write_bytes(b"orphan")
    sha = hashlib.sha256(b"orphan").hexdigest()
    old_key = object_key("wudu", "v001", "cam30", NOW - 45 * DAY_US, "crashed-ingest-old")
    new_key = object_key("wudu", "v001", "cam30", NOW - DAY_US, "in-flight")
    held_key = object_key("wudu", "v001", "cam30", NOW - 44 * DAY_US, "crashed-but-held")
    for key in (old_key, new_key, held_key):
        store.put_file(key, src, sha)
    catalog.add_hold("cam30", NOW - 44 * DAY_US, NOW - 44 * DAY_US + 1, "case-7")
    lost = rows["cam30"][-3]
    store.delete(lost.object_key)  # the store lost an object behind the catalog's back
    report = find_orphans(catalog, store, "cam30")
    assert sorted(report.objects_without_row) == sorted([old_key, new_key, held_key])
    assert report.rows_without_object == (lost.segment_id,)
    deleted = delete_orphan_objects(catalog, store, clock, report)
    assert deleted == [old_key]
    assert store.size(old_key) is None
    assert store.size(new_key) == 6 and store.size(held_key) == 6
    records = [r for r in catalog.retention_records() if r.reason == REASON_ORPHAN]
    assert [r.object_key for r in records] == [old_key]
    assert catalog.get_segment(lost.segment_id) is not None  # lost data is reported, not hidden


def test_deleting_rows_are_invisible_but_chain_lookups_still_see_them(
    catalog: Catalog, store: ObjectStore, tmp_path: Path, clock: ManualClock
):
    rows = add(catalog, store, tmp_path, "cam30", [40.0, 39.0, 0.0])
    marked = catalog.mark_deleting([rows[1].segment_id])
    assert [m.state for m in marked] == [SEGMENT_DELETING]
    assert catalog.mark_deleting([rows[1].segment_id]) == []  # already marked: no-op
    catalog.add_hold("cam30", rows[0].start_us, rows[0].end_us, "case-9")
    assert catalog.mark_deleting([rows[0].segment_id]) == []  # the catalog re-checks holds
    visible = catalog.segments_in_range("cam30", 0, NOW + DAY_US)
    assert [s.segment_id for s in visible] == [rows[0].segment_id, rows[2].segment_id]
    prev = catalog.previous_segment("cam30", rows[2].start_us)
    assert prev is not None and prev.segment_id == rows[1].segment_id
