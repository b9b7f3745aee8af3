"""The segment_media table on SQLite and PostgreSQL: written with its segment in one
transaction, read per segment and as each camera's current media, deleted by retention with
its segment, and added to a catalog created before it existed (by `db upgrade`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect

from controller.catalog import (
    Catalog,
    DuplicateSegmentError,
    InvalidInputError,
    SegmentMediaRow,
    make_engine,
)
from controller.catalog.db import upgrade_database
from controller.catalog.schema import SchemaError, baseline_metadata
from controller.clock import ManualClock
from tests.integration.test_catalog import T0, make_row

BIG_US = 4_102_444_800_000_000  # 2100-01-01: microseconds far beyond 32 bits


def media(row_id: str, camera: str, start_us: int, **kw: object) -> SegmentMediaRow:
    values: dict[str, object] = dict(
        segment_id=row_id,
        camera_id=camera,
        start_us=start_us,
        video_codec="hevc",
        video_profile="Main",
        width=1920,
        height=1080,
        frame_rate=25.0,
        audio_codec="aac",
        audio_sample_rate=16000,
        audio_channels=1,
        probe_us=600,
    )
    values.update(kw)
    return SegmentMediaRow(**values)  # type: ignore[arg-type]


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


@pytest.fixture
def catalog(engine: Engine) -> Catalog:
    cat = Catalog(engine, ManualClock(T0))
    cat.upsert_device("dev1", "wudu", "v001", "nvr")
    for cam in ("cam1", "cam2", "cam3"):
        cat.upsert_camera(cam, "dev1")
    return cat


def test_media_is_stored_with_its_segment_and_read_back(catalog: Catalog) -> None:
    rows = [make_row("cam1", i) for i in range(3)]
    for i, row in enumerate(rows):
        codec = "h264" if i == 2 else "hevc"
        catalog.add_segment(row, media(row.segment_id, "cam1", row.start_us, video_codec=codec))
    got = catalog.segment_media([r.segment_id for r in rows] + ["nope"])
    assert set(got) == {r.segment_id for r in rows}
    first = got[rows[0].segment_id]
    assert (first.video_codec, first.width, first.height, first.frame_rate) == (
        "hevc",
        1920,
        1080,
        25.0,
    )
    assert (first.audio_codec, first.audio_sample_rate, first.audio_channels) == ("aac", 16000, 1)
    assert catalog.camera_media()["cam1"].video_codec == "h264"  # the latest segment's


def test_current_media_skips_failed_probes_and_handles_big_times(catalog: Catalog) -> None:
    ok = make_row("cam2", 0, start_us=BIG_US)
    bad = make_row("cam2", 1, start_us=BIG_US + 4_000_000)
    catalog.add_segment(ok, media(ok.segment_id, "cam2", ok.start_us))
    catalog.add_segment(
        bad,
        media(bad.segment_id, "cam2", bad.start_us, video_codec="", probe_error="no streams"),
    )
    current = catalog.camera_media(["cam2", "cam3"])
    assert set(current) == {"cam2"}  # cam3 has no segments
    assert current["cam2"].segment_id == ok.segment_id
    assert current["cam2"].start_us == BIG_US
    assert catalog.segment_media([bad.segment_id])[bad.segment_id].probe_error == "no streams"
    assert catalog.camera_media([]) == {}


def test_media_and_segment_are_one_transaction(catalog: Catalog) -> None:
    row = make_row("cam1", 0)
    catalog.add_segment(row, media(row.segment_id, "cam1", row.start_us))
    again, later = make_row("cam1", 1), make_row("cam1", 2)
    twice = media(again.segment_id, "cam1", again.start_us)
    with pytest.raises(DuplicateSegmentError):  # the media insert fails: nothing is written
        catalog.add_segments([again, later], [twice, twice])
    with pytest.raises(InvalidInputError):
        catalog.add_segments([again], [media("elsewhere", "cam1", row.start_us)])
    for gone in (again, later):
        assert catalog.get_segment(gone.segment_id) is None
        assert catalog.segment_media([gone.segment_id]) == {}


def test_retention_deletes_the_media_with_the_segment(catalog: Catalog) -> None:
    row = make_row("cam1", 0)
    catalog.add_segment(row, media(row.segment_id, "cam1", row.start_us))
    marked = catalog.mark_deleting([row.segment_id])
    assert [m.segment_id for m in marked] == [row.segment_id]
    assert catalog.finish_deletions(marked, "retention") == [row.segment_id]
    assert catalog.segment_media([row.segment_id]) == {}
    assert catalog.camera_media() == {}


def test_an_existing_catalog_gains_the_table_on_upgrade(catalog_url: str) -> None:
    """A catalog of a release before segment_media (no schema version): `serve` refuses it,
    `vigil-controller db upgrade` adds the table (schema migrations replaced create_all on
    start)."""
    engine = make_engine(catalog_url, create=False)
    try:
        base = baseline_metadata()
        base.create_all(engine, tables=[t for t in base.sorted_tables if t.name != "segment_media"])
        assert "segment_media" not in inspect(engine).get_table_names()
        with pytest.raises(SchemaError, match="db upgrade"):
            make_engine(catalog_url)  # what `serve` does on start
        assert upgrade_database(engine).created == ("segment_media",)
        assert "segment_media" in inspect(engine).get_table_names()
        columns = {c["name"]: c for c in inspect(engine).get_columns("segment_media")}
        assert "start_us" in columns and "probe_us" in columns
        if engine.dialect.name == "postgresql":
            assert str(columns["start_us"]["type"]) == "BIGINT"
    finally:
        engine.dispose()
