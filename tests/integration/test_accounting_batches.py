"""The hourly gap accounting is the same whether segments arrive one by one, in any order,
or in batches (the batch path reads each camera's neighbours once, not per segment)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from controller.catalog import Catalog, make_engine
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
