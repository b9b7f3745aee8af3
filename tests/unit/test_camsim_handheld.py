"""Handheld emulator decisions and the bitmap font (pure; clip writing is in integration)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vigil_camsim import font, handheld
from vigil_camsim.handheld import HandheldConfig


def test_clip_names_sort_by_time_and_carry_device_and_sequence() -> None:
    a = handheld.clip_name("HH01", 1_767_225_600_000_000, 1, "mp4")
    b = handheld.clip_name("HH01", 1_767_225_661_000_000, 2, "mp4")
    assert a == "HH01_20260101T000000Z_000001.mp4"
    assert b == "HH01_20260101T000101Z_000002.mp4"
    assert sorted([b, a]) == [a, b]
    assert handheld.clip_name("HH01", 0, 3, "ts").endswith("_000003.ts")


def test_temp_name_is_hidden_and_not_a_video_suffix() -> None:
    name = handheld.temp_name("HH01_20260101T000000Z_000001.mp4")
    assert name.startswith(".") and name.endswith(".part")


@pytest.mark.parametrize(
    ("seq", "every", "corrupt"),
    [(1, 0, False), (3, 3, True), (4, 3, False), (6, 3, True), (1, 1, True)],
)
def test_corrupt_turns(seq: int, every: int, corrupt: bool) -> None:
    assert handheld.is_corrupt_turn(seq, every) is corrupt


def test_frame_count_follows_clip_length() -> None:
    assert handheld.frame_count(2.0, 25) == 50
    assert handheld.frame_count(0.01, 25) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fmt": "avi"}, "format"),
        ({"width": 641}, "even"),
        ({"width": 8}, "resolution"),
        ({"fps": 0}, "fps"),
        ({"clip_seconds": 0}, "clip"),
        ({"interval_seconds": -1}, "interval"),
        ({"corrupt_every": -1}, "corrupt"),
        ({"device_id": "../x"}, "device"),
        ({"device_id": ""}, "device"),
    ],
)
def test_bad_handheld_config_is_refused(changes: dict[str, object], message: str) -> None:
    config = dataclasses.replace(HandheldConfig(drop_dir=Path("/nonexistent")), **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        config.validated()


def test_font_renders_scaled_rows() -> None:
    rows = font.render("A1", scale=2)
    assert len(rows) == font.GLYPH_H * 2
    assert all(len(r) == 2 * (font.GLYPH_W + 1) * 2 for r in rows)
    assert rows[0] != rows[-1]  # not a blank block
    assert font.render("a", 1) == font.render("A", 1)
    assert font.render("\u00e9", 1) == font.render("?", 1)
    with pytest.raises(ValueError):
        font.render("A", 0)


def test_stamp_clips_to_the_picture() -> None:
    width, height, stride = 8, 4, 10
    plane = bytearray(stride * height)
    font.stamp(plane, stride, [b"\xff" * 6] * 6, x=5, y=2, width=width)
    assert len(plane) == stride * height  # nothing written past the plane
    assert plane[2 * stride + 5 : 2 * stride + 8] == b"\xff" * 3
    assert plane[2 * stride + 8 : 2 * stride + 10] == b"\x00\x00"  # stride padding untouched
    assert plane[: 2 * stride] == bytes(2 * stride)
