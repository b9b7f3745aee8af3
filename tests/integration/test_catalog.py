"""The catalog on a real database: every test runs on SQLite (WAL) and on PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from controller.catalog import (
    Catalog,
    CatalogUnavailableError,
    DuplicateSegmentError,
    InvalidInputError,
    SegmentRow,
    UnknownCameraError,
    UnknownDeviceError,
    UnknownSegmentError,
    make_engine,
    range_query,
)
from controller.clock import ManualClock
from tests.support import free_port

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEG_US = 4_000_000


def sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def make_row(
    camera: str,
    i: int,
    start_us: int | None = None,
    duration_us: int = SEG_US,
    validate: bool = True,
    **kw,
):
    start = T0 + i * SEG_US if start_us is None else start_us
    values: dict[str, Any] = dict(
        segment_id=f"{camera}-{i:06d}",
        camera_id=camera,
        device_id="dev1",
        start_us=start,
        duration_us=duration_us,
        end_us=start + duration_us,
        size_bytes=1000 + i,
        sha256=sha(f"{camera}{i}"),
        prev_sha256=sha(f"{camera}{i - 1}") if i else "",
        object_key=f"wudu/v1/{camera}/seg-{i}.ts",
    )
    values.update(kw)
    # model_construct skips pydantic's checks: the catalog must refuse bad rows by itself
    return SegmentRow(**values) if validate else SegmentRow.model_construct(**values)


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


@pytest.fixture
def catalog(engine: Engine) -> Catalog:
    cat = Catalog(engine, ManualClock(T0))
    cat.upsert_device("dev1", "wudu", "v001", "nvr")
    for cam in ("cam1", "cam2", "cam3", "cam4"):
        cat.upsert_camera(cam, "dev1")
    return cat


def test_registry_upserts_and_reads(catalog: Catalog):
    catalog.upsert_device("dev2", "武都区", "村01", "handheld")
    catalog.upsert_camera("cam9", "dev2", retention_days=7, resource_class="III")
    cam = catalog.camera("cam9")
    assert cam is not None
    assert (cam.device_id, cam.county, cam.site, cam.retention_days, cam.resource_class) == (
        "dev2",
        "武都区",
        "村01",
        7,
        "III",
    )
    catalog.upsert_device("dev2", "武都区", "村02", "handheld")  # the device moved
    catalog.upsert_camera("cam9", "dev2", retention_days=60)
    cam = catalog.camera("cam9")
    assert cam is not None and cam.site == "村02" and cam.retention_days == 60
    assert catalog.device("dev2") is not None and catalog.device("nope") is None
    assert catalog.camera("nope") is None
    assert [d.device_id for d in catalog.devices()] == ["dev1", "dev2"]
    assert [c.camera_id for c in catalog.cameras()] == ["cam1", "cam2", "cam3", "cam4", "cam9"]


def test_bad_registry_input_is_refused_and_changes_nothing(catalog: Catalog):
    with pytest.raises(UnknownDeviceError):
        catalog.upsert_camera("camX", "no-such-device")
    for kwargs in ({"retention_days": 0}, {"retention_days": 10**6}, {"resource_class": "IV"}):
        with pytest.raises(InvalidInputError):
            catalog.upsert_camera("cam1", "dev1", **kwargs)
    for bad in ("", "a/b", "x" * 200, " padded", "ctl\x01"):
        with pytest.raises(InvalidInputError):
            catalog.upsert_device(bad, "wudu", "v1", "nvr")
    with pytest.raises(InvalidInputError):
        catalog.upsert_device("dev2", "wudu", "v1", "k" * 40)  # longer than the column
    with pytest.raises(InvalidInputError):
        catalog.previous_segment("cam1", 2**70)
    with pytest.raises(InvalidInputError):
        catalog.next_segment("cam1", -1)
    assert catalog.camera("camX") is None
    cam = catalog.camera("cam1")
    assert cam is not None and cam.retention_days == 30 and cam.resource_class == "II"
    assert [d.device_id for d in catalog.devices()] == ["dev1"]


def test_batched_insert_and_range_queries(catalog: Catalog):
    rows = [make_row(f"cam{c}", i) for c in range(1, 5) for i in range(2500)]
    catalog.add_segments(rows)  # 10,000 rows, one transaction
    assert catalog.count_segments() == 10_000
    assert catalog.count_segments("cam2") == 2500
    got = catalog.get_segment("cam3-000042")
    assert got == rows[2 * 2500 + 42].model_copy(update={"committed_at_us": T0})
    cam1 = [r for r in rows if r.camera_id == "cam1"]
    cases = [
        (T0, T0 + 1),  # inside the first segment
        (T0 - SEG_US, T0),  # ends exactly where the first begins: nothing
        (T0 + SEG_US - 1, T0 + SEG_US + 1),  # straddles a boundary: two segments
        (T0 + 10 * SEG_US, T0 + 20 * SEG_US),  # aligned: exactly ten
        (T0 + 2499 * SEG_US + 1, T0 + 10**12),  # the tail
        (0, T0 + 10**12),  # everything
    ]
    for start, end in cases:
        expected = [r.segment_id for r in cam1 if r.start_us < end and r.end_us > start]
        got_ids = [r.segment_id for r in catalog.segments_in_range("cam1", start, end)]
        assert got_ids == expected, (start, end)
    assert len(catalog.segments_in_range("cam1", T0 + 10 * SEG_US, T0 + 20 * SEG_US)) == 10
    assert len(catalog.segments_in_range("cam1", 0, T0 + 10**12, limit=7)) == 7
    assert catalog.segments_in_range("no-such-camera", 0, T0 + 10**12) == []


def test_long_segments_are_found_from_inside(catalog: Catalog):
    """The index bound uses the camera's longest segment: a one-hour segment still shows
    up for a query that starts in its middle."""
    catalog.add_segments([make_row("cam1", i) for i in range(5)])
    long_row = make_row("cam1", 5, start_us=T0 + 3600 * 10**6, duration_us=3600 * 10**6)
    catalog.add_segment(long_row)
    mid = long_row.start_us + 1800 * 10**6
    assert [r.segment_id for r in catalog.segments_in_range("cam1", mid, mid + 1)] == [
        long_row.segment_id
    ]


def test_range_query_uses_the_camera_start_index(catalog: Catalog, engine: Engine):
    catalog.add_segments([make_row(f"cam{c}", i) for c in range(1, 5) for i in range(2000)])
    query = range_query("cam2", T0 + 100 * SEG_US, T0 + 110 * SEG_US, SEG_US, 1000)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            )
            assert "USING INDEX ix_segment_camera_start" in plan, plan
            assert "start_us>" in plan.replace(" ", "") and "start_us<" in plan.replace(" ", "")
        else:
            conn.execute(text("ANALYZE segment"))
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
            assert "ix_segment_camera_start" in plan, plan
            assert "Seq Scan" not in plan, plan


def test_previous_and_next_segment(catalog: Catalog):
    catalog.add_segments([make_row("cam1", i) for i in (0, 1, 2, 5)])
    catalog.add_segment(make_row("cam2", 3))
    prev = catalog.previous_segment("cam1", T0 + 5 * SEG_US)
    assert prev is not None and prev.segment_id == "cam1-000002"
    assert catalog.previous_segment("cam1", T0) is None
    nxt = catalog.next_segment("cam1", T0 + 2 * SEG_US)
    assert nxt is not None and nxt.segment_id == "cam1-000005"
    assert catalog.next_segment("cam1", T0 + 5 * SEG_US) is None


def test_big_timestamps_fit(catalog: Catalog):
    far = 4_000_000_000_000_000  # year 2096: past any 32-bit column
    catalog.add_segment(make_row("cam1", 1, start_us=far, size_bytes=5 * 2**40, agent_flags=2**40))
    got = catalog.get_segment("cam1-000001")
    assert got is not None and got.start_us == far and got.size_bytes == 5 * 2**40


def test_duplicate_or_unknown_camera_fails_the_whole_batch(catalog: Catalog):
    catalog.add_segment(make_row("cam1", 7))
    batch = [make_row("cam1", i) for i in range(5, 10)]  # includes cam1-000007
    with pytest.raises(DuplicateSegmentError) as info:
        catalog.add_segments(batch)
    assert info.value.segment_id == "cam1-000007"
    assert catalog.count_segments() == 1
    with pytest.raises(UnknownCameraError, match="camZ"):
        catalog.add_segments([make_row("cam1", 20), make_row("camZ", 21)])
    assert catalog.count_segments() == 1
    with pytest.raises(InvalidInputError, match="twice"):
        catalog.add_segments([make_row("cam1", 30), make_row("cam1", 30)])
    assert catalog.count_segments() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"end_us": T0 + 1},  # not start + duration
        {"duration_us": -1, "end_us": T0 - 1},
        {"start_us": -5, "end_us": -5 + SEG_US},
        {"sha256": "abc"},
        {"sha256": "A" * 64},
        {"prev_sha256": "nothex"},
        {"object_key": ""},
        {"segment_id": ""},
        {"segment_id": "x" * 129},
        {"camera_id": "bad/camera"},
        {"start_us": 2**63, "end_us": 2**63 + SEG_US},
    ],
)
def test_malformed_segments_are_refused(catalog: Catalog, change):
    with pytest.raises(InvalidInputError):
        catalog.add_segments([make_row("cam1", 1), make_row("cam1", 2, validate=False, **change)])
    assert catalog.count_segments() == 0


def test_flags_and_conflicts_are_recorded_and_visible(catalog: Catalog):
    catalog.add_segments([make_row("cam1", 0), make_row("cam1", 1), make_row("cam2", 0)])
    catalog.flag_segment("cam1-000001", "chain_break", "prev_sha256 mismatch")
    catalog.flag_segment("cam2-000000", "gap", "12 s missing before")
    seg = catalog.get_segment("cam1-000001")
    assert seg is not None and seg.flag == "chain_break" and not seg.chain_ok
    assert seg.flag_detail == "prev_sha256 mismatch"
    gap = catalog.get_segment("cam2-000000")
    assert gap is not None and gap.flag == "gap" and gap.chain_ok
    assert [(f.segment_id, f.flag) for f in catalog.flags()] == [
        ("cam1-000001", "chain_break"),
        ("cam2-000000", "gap"),
    ]
    assert [f.flag for f in catalog.flags("cam2")] == ["gap"]
    with pytest.raises(UnknownSegmentError):
        catalog.flag_segment("nope", "gap", "")
    with pytest.raises(InvalidInputError):
        catalog.flag_segment("cam1-000000", "x" * 40, "")
    catalog.record_conflict("cam1-000000", "cam1", "dev1", sha("cam10"), sha("forged"))
    conflicts = catalog.conflicts("cam1")
    assert len(conflicts) == 1
    assert conflicts[0].offered_sha256 == sha("forged") and conflicts[0].recorded_at_us == T0
    assert catalog.conflicts("cam2") == []
    with pytest.raises(InvalidInputError):
        catalog.record_conflict("cam1-000000", "cam1", "dev1", sha("a"), "not-a-hash")
    assert len(catalog.conflicts()) == 1
    assert len(catalog.flags()) == 2


def test_clear_flag_heals_the_segment_and_keeps_the_history(catalog: Catalog):
    catalog.add_segments([make_row("cam1", 0), make_row("cam1", 2)])
    catalog.flag_segment("cam1-000002", "gap", "prev_sha256 names a segment not in the catalog")
    assert catalog.clear_flag("cam1-000002") is True
    seg = catalog.get_segment("cam1-000002")
    assert seg is not None and (seg.flag, seg.flag_detail, seg.chain_ok) == ("", "", True)
    # the history still says it was flagged once
    assert [(f.segment_id, f.flag) for f in catalog.flags("cam1")] == [("cam1-000002", "gap")]
    # a broken link is cleared the same way (chain_ok back to true)
    catalog.flag_segment("cam1-000000", "chain_break", "contradicted")
    assert catalog.clear_flag("cam1-000000") is True
    seg = catalog.get_segment("cam1-000000")
    assert seg is not None and seg.chain_ok and seg.flag == ""
    # nothing to clear: a no-op, so a retried heal is harmless
    assert catalog.clear_flag("cam1-000002") is False


def test_clear_flag_refuses_unknown_and_malformed_ids(catalog: Catalog):
    catalog.add_segments([make_row("cam1", 0)])
    catalog.flag_segment("cam1-000000", "gap", "waiting")
    with pytest.raises(UnknownSegmentError):
        catalog.clear_flag("cam1-999999")
    with pytest.raises(InvalidInputError):
        catalog.clear_flag("bad/id")
    seg = catalog.get_segment("cam1-000000")
    assert seg is not None and seg.flag == "gap"  # untouched


def test_holds(catalog: Catalog):
    hold = catalog.add_hold("cam1", T0, T0 + 3600 * 10**6, "case-2026-001")
    other = catalog.add_hold("cam2", T0, T0 + 1, "case-2026-002")
    assert hold != other
    assert [(h.id, h.case_id) for h in catalog.holds("cam1")] == [(hold, "case-2026-001")]
    assert [h.id for h in catalog.holds(case_id="case-2026-002")] == [other]
    assert catalog.release_hold(hold) is True
    assert catalog.release_hold(hold) is False  # already released: nothing changes
    assert catalog.release_hold(999_999) is False
    assert catalog.holds("cam1") == []
    released = catalog.holds("cam1", active_only=False)
    assert len(released) == 1 and released[0].released_at_us == T0
    with pytest.raises(UnknownCameraError):
        catalog.add_hold("camZ", T0, T0 + 1, "case")
    for start, end, case in ((T0, T0, "c"), (T0 + 1, T0, "c"), (-1, T0, "c"), (T0, T0 + 1, "")):
        with pytest.raises(InvalidInputError):
            catalog.add_hold("cam1", start, end, case)
    assert len(catalog.holds(active_only=False)) == 2


def test_concurrent_writers_queue_instead_of_failing(catalog: Catalog):
    errors: list[BaseException] = []

    def writer(camera: str) -> None:
        try:
            for i in range(20):
                catalog.add_segments([make_row(camera, i * 5 + k) for k in range(5)])
                catalog.segments_in_range(camera, T0, T0 + 10**12)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"cam{c}",)) for c in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert catalog.count_segments() == 4 * 100


def test_make_engine_refuses_unusable_urls():
    for bad, message in (
        ("", "empty"),
        ("mysql://u@h/db", "only sqlite and postgresql"),
        ("postgresql+psycopg2://u@h/db", "psycopg"),
        ("postgresql://user:secret@h:notaport/db", "malformed"),
    ):
        with pytest.raises(ValueError, match=message) as info:
            make_engine(bad)
        assert "secret" not in str(info.value)


def test_unreachable_database_is_catalog_unavailable():
    engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none", create=False)
    catalog = Catalog(engine, ManualClock(T0))
    with pytest.raises(CatalogUnavailableError, match="get segment"):
        catalog.get_segment("s1")
    with pytest.raises(CatalogUnavailableError, match="add segments"):
        catalog.add_segment(make_row("cam1", 1))
    engine.dispose()
