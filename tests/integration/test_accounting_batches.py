"""The hourly gap accounting is the same whether segments arrive one by one, in any order,
or in batches (the batch path reads each camera's neighbours once, not per segment)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select

from controller.catalog import Catalog, make_engine
from controller.catalog.accounting import Deltas, apply_deltas
from controller.catalog.history_models import CameraHour
from controller.catalog.models import SegmentRow
from controller.clock import ManualClock

US = 1_000_000
START = 1_793_491_200 * US
SEG = 600 * US


def rows() -> list[SegmentRow]:
    """12 chained 10-minute segments of cam-a from START; 4 and 5 start 5 min late (gaps of
    5 min before each: 10 min); 8 is never uploaded (evicted: the chain breaks, no gap)."""
    out, prev = [], ""
    for i in range(12):
        sha = f"{i:064x}"
        start = START + i * SEG + (300 * US if i in (4, 5) else 0)
        link, prev = prev, sha
        if i == 8:
            continue
        out.append(
            SegmentRow(
                segment_id=f"cam-a-{i:02d}",
                camera_id="cam-a",
                device_id="nvr",
                start_us=start,
                duration_us=SEG if i not in (4, 5) else SEG - 300 * US,
                end_us=start + (SEG if i not in (4, 5) else SEG - 300 * US),
                size_bytes=10,
                sha256=sha,
                prev_sha256=link,
                object_key=f"k/{i}",
                committed_at_us=START + 13 * SEG,
            )  # fmt: skip
        )
    return out


def gaps(tmp: Path, name: str, batches: list[list[SegmentRow]]) -> dict[int, int]:
    engine = make_engine(f"sqlite:///{tmp / name}.db")
    catalog = Catalog(engine, ManualClock(START + 13 * SEG))
    catalog.upsert_device("nvr", "wudu", "wudu-01-01", "nvr")
    catalog.upsert_camera("cam-a", "nvr")
    for batch in batches:
        catalog.add_segments(batch)
    with engine.connect() as conn:
        found = {r.hour_us: r.gap_us for r in conn.execute(select(CameraHour))}  # type: ignore[call-overload]
    engine.dispose()
    return found


def test_one_by_one_reversed_and_batched_give_the_same_gaps(tmp_path: Path) -> None:
    all_rows = rows()
    expected = {START: 10 * 60 * US, START + 3600 * US: 0}
    assert gaps(tmp_path, "batch", [all_rows]) == expected
    assert gaps(tmp_path, "single", [[r] for r in reversed(all_rows)]) == expected
    odd, even = all_rows[1::2], all_rows[0::2]
    assert gaps(tmp_path, "mixed", [odd, *[[r] for r in even]]) == expected


def test_upserts_of_mixed_columns_add_up_on_both_databases(catalog_url: str) -> None:
    """The cached upserts (one per column set, runs of rows in one executemany) add to the
    right rows and columns, and `video_height` keeps the largest, on SQLite and PostgreSQL."""
    engine = make_engine(catalog_url)
    Catalog(engine, ManualClock(START))
    hour = 3600 * US
    first: Deltas = {
        ("cam-a", START): Counter(recorded_us=5, segments=1, video_height=720),
        ("cam-b", START): Counter(recorded_us=7, segments=1, video_height=1080),
        ("cam-c", START): Counter(recorded_us=2, gap_us=3),
        ("cam-c", START + hour): Counter(evicted_us=4, evicted_bytes=9),
    }
    second: Deltas = {
        ("cam-a", START): Counter(recorded_us=1, segments=1, video_height=480),
        ("cam-b", START): Counter(gap_us=6, video_height=2160),
        ("cam-c", START + hour): Counter(evicted_us=1, evicted_bytes=0),
    }
    try:
        for deltas in (first, second):
            with engine.begin() as conn:
                apply_deltas(conn, deltas)
        with engine.connect() as conn:
            table = CameraHour.__table__  # type: ignore[attr-defined]
            got = {
                (r.camera_id, r.hour_us - START): (
                    r.recorded_us,
                    r.segments,
                    r.video_height,
                    r.gap_us,
                    r.evicted_us,
                    r.evicted_bytes,
                )
                for r in conn.execute(select(table))
            }
    finally:
        engine.dispose()
    assert got == {
        ("cam-a", 0): (6, 2, 720, 0, 0, 0),
        ("cam-b", 0): (7, 1, 2160, 6, 0, 0),
        ("cam-c", 0): (2, 0, 0, 3, 0, 0),
        ("cam-c", hour): (0, 0, 0, 0, 5, 9),
    }
