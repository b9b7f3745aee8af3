"""The day tables (`camera_day`, `class_day`; revision 0016) always equal the sums of their
hourly rows per Asia/Shanghai day, whatever mix of ingest, losses (resent) and
classifications (repeated) made them, on SQLite and PostgreSQL; the report's reads give the
same sums from them as from the hours alone; and migrating a database that has hourly rows
back-fills its days."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from controller.catalog import Catalog, make_engine
from controller.catalog.daily import DAY_US, HOUR_US, day_of
from controller.catalog.db import upgrade_database
from controller.catalog.history import SUM_COLUMNS, HistoryCatalog, HourSums
from controller.catalog.history_models import DELAY_COLUMNS, LossEventRow
from controller.catalog.models import SegmentMediaRow, SegmentRow
from controller.catalog.schema import _run as run_migrations
from controller.catalog.schema import script_directory
from controller.clock import ManualClock

US = 1_000_000
# 2026-11-01 05:00 local: segments run across local midnights (16:00 UTC) and UTC ones.
START = 1_793_462_400 * US + 5 * HOUR_US
CAMERAS = ("cam-a", "cam-b", "cam-c")
Sums = dict[tuple[object, ...], Counter[str]]


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


def segments(rng: random.Random) -> list[SegmentRow]:
    """Per camera a chain of 20-40 segments of 5-90 min over ~2 days, some apart (gaps)."""
    out = []
    for cam in CAMERAS:
        t, prev = START + rng.randrange(3 * HOUR_US), ""
        for i in range(rng.randint(20, 40)):
            t += rng.choice([0, 0, 0, 7 * 60 * US])
            length = rng.randint(5, 90) * 60 * US
            sha = f"{cam}-{i}".encode().hex().ljust(64, "0")
            out.append(
                SegmentRow(
                    segment_id=f"{cam}-{i}",
                    camera_id=cam,
                    device_id="nvr",
                    start_us=t,
                    duration_us=length,
                    end_us=t + length,
                    size_bytes=rng.randint(1, 10**6),
                    sha256=sha,
                    prev_sha256=prev,
                    object_key=f"k/{cam}/{i}",
                    committed_at_us=t + length + rng.choice([5, 50, 500, 5000, 90000]) * US,
                )
            )
            t, prev = t + length, sha
    return out


def feed(engine: Engine, rng: random.Random) -> None:
    """Uploads in random order and batches, some with media; loss reports, some twice;
    classifications, some repeated or for another class (the first one counts)."""
    catalog = Catalog(engine, ManualClock(START + 4 * DAY_US))
    history = HistoryCatalog(engine, ManualClock(START + 4 * DAY_US))
    catalog.upsert_device("nvr", "wudu", "wudu-01-01", "nvr")
    for cam in CAMERAS:
        catalog.upsert_camera(cam, "nvr")
    rows = segments(rng)
    rng.shuffle(rows)
    kept = [r for r in rows if rng.random() < 0.85]  # the others are evicted unsent
    lost = [r for r in rows if r not in kept]
    actions: list[tuple[str, list[SegmentRow]]] = []
    i = 0
    while i < len(kept):
        n = rng.choice([1, 1, 3, 7])
        actions.append(("upload", kept[i : i + n]))
        i += n
    actions += [("loss", [r]) for r in lost for _ in range(rng.choice([1, 2]))]
    actions += [("classify", rng.sample(kept, 5)) for _ in range(8)]
    rng.shuffle(actions)
    uploaded: set[str] = set()
    for kind, batch in actions:
        if kind == "upload":
            media = [
                SegmentMediaRow(segment_id=r.segment_id, camera_id=r.camera_id,
                                start_us=r.start_us, height=rng.choice([480, 720, 1080]))
                for r in batch if rng.random() < 0.5
            ]  # fmt: skip
            catalog.add_segments(batch, media)
            uploaded |= {r.segment_id for r in batch}
        elif kind == "loss":
            r = batch[0]
            history.record_losses([
                LossEventRow(device_id="nvr", camera_id=r.camera_id, session=1, seq=0,
                             fact_id=r.segment_id, start_us=r.start_us, end_us=r.end_us,
                             size_bytes=r.size_bytes, reason="buffer_full", at_us=r.end_us,
                             received_us=r.end_us)
            ])  # fmt: skip
        else:
            history.classify_segments({r.segment_id: rng.choice([1, 2, 4, 5]) for r in batch})


def table(engine: Engine, name: str, keys: tuple[str, ...], day: bool) -> Sums:
    """Rows of `name` (summed per local day when `day`: for the hourly tables)."""
    out: Sums = {}
    with engine.connect() as conn:
        for r in conn.execute(text(f"SELECT * FROM {name}")).mappings():
            key = tuple(day_of(r[k]) if day and k == "hour_us" else r[k] for k in keys)
            into = out.setdefault(key, Counter())
            for c, v in r.items():
                if c not in keys and c not in ("camera_id", "hour_us", "day_us", "traffic_class"):
                    into[c] = max(into[c], v) if c == "video_height" else into[c] + v
    return out


def assert_days_equal_hours(engine: Engine) -> None:
    keys = ("camera_id", "hour_us")
    hours = table(engine, "camera_hour", keys, day=True)
    assert hours and table(engine, "camera_day", ("camera_id", "day_us"), False) == hours
    classes = table(engine, "class_hour", ("camera_id", "hour_us", "traffic_class"), True)
    days = table(engine, "class_day", ("camera_id", "day_us", "traffic_class"), False)
    assert classes and days == classes


@pytest.mark.parametrize("seed", [1, 2])
def test_days_equal_the_sums_of_their_hours_after_random_writes(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    feed(engine, rng)
    assert_days_equal_hours(engine)
    history = HistoryCatalog(engine, ManualClock(START))
    for _ in range(12):  # the report's reads: days where whole, hours at the edges
        a = START - DAY_US + rng.randrange(4 * DAY_US)
        a -= a % HOUR_US if rng.random() < 0.5 else a - day_of(a)
        b = a + rng.randrange(4 * DAY_US)
        for by in ("camera", "bucket"):
            mixed = history.hour_sums(a, b, by)
            hourly = history.hour_sums(a, b, "hour" if by == "bucket" else by)
            if by == "camera":
                assert {s.key: s.sums for s in mixed} == {s.key: s.sums for s in hourly}
            else:  # per bucket: the same per local day
                assert per_day(mixed) == per_day(hourly)
        assert history.class_sums(a, b) == hourly_class_sums(engine, a, b)


def per_day(sums: list[HourSums]) -> dict[int, Counter[str]]:
    out: dict[int, Counter[str]] = {}
    for s in sums:
        into = out.setdefault(day_of(int(s.key)), Counter())
        for c, v in s.sums.items():
            into[c] = max(into[c], v) if c == "video_height" else into[c] + v
    return {k: +v for k, v in out.items()}


def hourly_class_sums(engine: Engine, a: int, b: int) -> dict[str, dict[int, list[int]]]:
    out: dict[str, dict[int, list[int]]] = {}
    cols = ", ".join(f"sum({c})" for c in DELAY_COLUMNS)
    q = text(
        f"SELECT camera_id, traffic_class, {cols} FROM class_hour WHERE hour_us >= :a AND "
        "hour_us < :b GROUP BY camera_id, traffic_class"
    )
    with engine.connect() as conn:
        for cam, cls, *counts in conn.execute(q, {"a": a, "b": b}):
            out.setdefault(cam, {})[int(cls)] = [int(c) for c in counts]
    return out


def test_migrating_a_database_with_hourly_rows_back_fills_its_days(catalog_url: str) -> None:
    engine = make_engine(catalog_url, create=False)
    try:
        with engine.begin() as conn:
            run_migrations(conn, script_directory(), "0015", stamp=False)
        rng = random.Random(3)
        cols = ("camera_id", "hour_us", *SUM_COLUMNS, "video_height")
        insert = text(f"INSERT INTO camera_hour ({', '.join(cols)}) VALUES (:{', :'.join(cols)})")
        ccols = ("camera_id", "hour_us", "traffic_class", "segments", *DELAY_COLUMNS)
        cinsert = text(f"INSERT INTO class_hour ({', '.join(ccols)}) VALUES (:{', :'.join(ccols)})")
        with engine.begin() as conn:
            for cam in CAMERAS:
                for h in rng.sample(range(24 * 5), 60):
                    row = {c: rng.randrange(10**9) for c in cols[2:]}
                    conn.execute(insert, {"camera_id": cam, "hour_us": START + h * HOUR_US} | row)
                    for cls in rng.sample([1, 2, 4, 5], 2):
                        crow = {c: rng.randrange(1000) for c in ccols[3:]}
                        hour = START + h * HOUR_US
                        conn.execute(
                            cinsert,
                            {"camera_id": cam, "hour_us": hour, "traffic_class": cls} | crow,
                        )
        upgrade_database(engine)
        assert len(table(engine, "camera_day", ("camera_id", "day_us"), False)) >= 3 * 5
        assert_days_equal_hours(engine)
    finally:
        engine.dispose()
