"""Per-platform footage windows and on-agent footage INVITEs: the pure decisions."""

from __future__ import annotations

import pytest

from controller.config import ConfigError, parse_config
from controller.gb28181 import footage, manscdp
from controller.gb28181.cascade import Responder, gb_time
from controller.gb28181.codes import Directory, Place
from controller.gb28181.footage import DAY_US, OpenJob, Refusal

US = 1_000_000
NOW = 1_780_000_000 * US


def test_window_is_days_back_from_now_and_zero_means_no_limit() -> None:
    assert footage.window_from(0, NOW) == 0
    assert footage.window_from(7, NOW) == NOW - 7 * DAY_US


def test_ranges_are_clipped_to_the_window() -> None:
    lo = NOW - DAY_US
    ranges = [(lo - 50 * US, lo - 10 * US), (lo - 5 * US, lo + 5 * US), (lo + 9 * US, NOW)]
    assert footage.clip_ranges(ranges, lo) == [(lo, lo + 5 * US), (lo + 9 * US, NOW)]
    assert footage.clip_ranges(ranges, 0) == ranges


def test_invite_range_wholly_outside_the_window_is_refused_403_with_the_window_said() -> None:
    lo = footage.window_from(30, NOW)
    got = footage.check_range(lo - 3600 * US, lo, lo, 30)
    assert isinstance(got, Refusal) and got.status == 403
    assert "footage window (the last 30 days)" in got.reason and "最近 30 天" in got.warning


def test_invite_range_partly_outside_is_served_from_the_window_start() -> None:
    lo = footage.window_from(30, NOW)
    assert footage.check_range(lo - 60 * US, lo + 60 * US, lo, 30) == (lo, lo + 60 * US)
    assert footage.check_range(lo - 60 * US, lo + 60 * US, 0, 0) == (lo - 60 * US, lo + 60 * US)


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (NOW, NOW, "empty or reversed"),
        (NOW, NOW - US, "empty or reversed"),
        (NOW - 40 * DAY_US, NOW, "longer than 31 days"),
    ],
)
def test_inverted_empty_or_oversize_invite_ranges_are_400(start: int, end: int, words: str) -> None:
    got = footage.check_range(start, end, 0, 0)
    assert isinstance(got, Refusal) and got.status == 400 and words in got.reason


def test_fetch_span_is_the_on_agent_hull_inside_the_asked_range() -> None:
    spans = [(100, 200), (300, 400)]
    assert footage.fetch_span(spans, 150, 350) == (150, 350)
    assert footage.fetch_span(spans, 0, 1000) == (100, 400)
    assert footage.fetch_span(spans, 200, 300) is None
    assert footage.fetch_span([], 0, 10) is None


def test_an_open_request_covering_the_range_is_reused() -> None:
    jobs = [OpenJob("a" * 16, ("cam-2",), 0, 1000), OpenJob("b" * 16, ("cam-1",), 100, 500)]
    assert footage.covering(jobs, "cam-1", 100, 500) is jobs[1]
    assert footage.covering(jobs, "cam-1", 200, 300) is jobs[1]
    assert footage.covering(jobs, "cam-1", 50, 300) is None  # starts earlier: a new request
    assert footage.covering(jobs, "cam-3", 100, 200) is None


def test_fetching_answer_is_480_with_retry_after_from_the_eta_bounded() -> None:
    got = footage.fetching("0123456789abcdef", 0, NOW, filed=True)
    assert got.status == 480 and got.retry_after_s == footage.RETRY_DEFAULT_S
    assert "fetch requested (job 01234567)" in got.reason and "已向设备调取" in got.warning
    assert footage.fetching("x" * 16, NOW + 95 * US, NOW, False).retry_after_s == 95
    assert "already requested" in footage.fetching("x" * 16, 0, NOW, False).reason
    assert footage.retry_after_s(NOW + US, NOW) == footage.RETRY_MIN_S
    assert footage.retry_after_s(NOW + 10 * DAY_US, NOW) == footage.RETRY_MAX_S


def test_warning_header_is_quoted_and_bounded() -> None:
    value = footage.warning("10.0.0.5", 'a "quoted" 文本\\' + "x" * 300)
    assert value.startswith("399 10.0.0.5 \"a 'quoted' 文本") and value.endswith('"')
    assert len(value) < 230


def test_record_info_is_clipped_to_the_platform_window() -> None:
    place = Place(
        "cam-1", "dev1", "武都区", "东关村", "路口", "62120200001320000001", "II", "东关村"
    )
    directory = Directory.of([place])
    lo = NOW - DAY_US
    stored = [(lo - 600 * US, lo + 600 * US), (lo - 7200 * US, lo - 3600 * US)]

    def ranges(_c: str, a: int, b: int) -> list[tuple[int, int]]:
        return [(x, y) for x, y in stored if x < b and y > a]

    def answer(window: int, start: int, end: int) -> str:
        responder = Responder(
            "p", "V", directory, frozenset({"cam-1"}), ranges, NOW, window_from_us=window
        )
        q = manscdp.parse(
            "<Query><CmdType>RecordInfo</CmdType><SN>1</SN><DeviceID>62120200001320000001"
            f"</DeviceID><StartTime>{gb_time(start)}</StartTime><EndTime>{gb_time(end)}"
            "</EndTime></Query>".encode()
        )
        return manscdp.decode(responder.answer(q)[0])

    text = answer(lo, lo - DAY_US, NOW)
    assert "<SumNum>1</SumNum>" in text and f"<StartTime>{gb_time(lo)}</StartTime>" in text
    assert answer(0, lo - DAY_US, NOW).count("<Item>") == 2  # no window: both, unclipped
    assert "<SumNum>0</SumNum>" in answer(lo, lo - DAY_US, lo - 1800 * US)  # wholly before


UPPER = """
[gb28181]
enabled = true
[[gb28181.upper]]
server_id = "34020000002000000001"
address = "127.0.0.1:5060"
local_id = "62120000002000000001"
password_file = "/x"
org = "gongan"
"""


def test_footage_days_defaults_to_no_limit_and_is_bounded() -> None:
    assert parse_config(UPPER, "t.toml").gb28181.upper[0].footage_days == 0
    assert parse_config(UPPER + "footage_days = 30", "t.toml").gb28181.upper[0].footage_days == 30


@pytest.mark.parametrize("value", ["-1", "3661", "1000000000", "1.5", '"30"', "true"])
def test_absurd_footage_days_are_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ConfigError, match=r"t.toml: .*footage_days"):
        parse_config(UPPER + f"footage_days = {value}", "t.toml")
