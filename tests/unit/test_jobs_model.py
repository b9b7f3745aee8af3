"""Footage requests: the checks a request must pass (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.jobs.model import (
    JOB_DONE,
    JOB_OPEN,
    MAX_CAMERAS,
    GoneRange,
    JobError,
    JobNotFound,
    JobRequest,
    JobView,
    check_job_id,
    describe_gone,
    hold_tag,
    parse_class,
    validate_request,
)
from controller.scheduler.model import TrafficClass

S = 1_000_000
NOW = 1_767_225_600 * S
KNOWN = {"cam1", "cam2"}


def good(**changes: object) -> JobRequest:
    req = JobRequest(("cam1",), NOW - 3600 * S, NOW - 60 * S, NOW + 3600 * S, "case-1")
    return replace(req, **changes)  # type: ignore[arg-type]


def test_a_good_request_passes_with_cameras_deduplicated() -> None:
    req = validate_request(good(cameras=("cam2", "cam1", "cam2")), NOW, KNOWN)
    assert req.cameras == ("cam2", "cam1")
    assert req.traffic_class is TrafficClass.EVIDENCE


def test_a_range_ending_right_now_is_accepted() -> None:
    assert validate_request(good(end_us=NOW + 2 * S), NOW, KNOWN).end_us == NOW + 2 * S


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cameras": ()}, "at least one camera"),
        ({"cameras": ("cam1", "cam9")}, "unknown camera"),
        ({"cameras": ("../etc",)}, "malformed"),
        ({"cameras": tuple(f"c{i}" for i in range(MAX_CAMERAS + 1))}, "at most"),
        ({"start_us": NOW - 60 * S, "end_us": NOW - 3600 * S}, "reversed"),
        ({"start_us": NOW - 60 * S, "end_us": NOW - 60 * S}, "reversed or empty"),
        ({"start_us": 0}, "after 1970"),
        ({"end_us": NOW + 600 * S}, "in the future"),
        ({"start_us": NOW - 40 * 86400 * S}, "longer than"),
        ({"deadline_us": NOW - S}, "in the past"),
        ({"deadline_us": NOW + S}, "only 1.0 s away"),
        ({"deadline_us": NOW + 365 * 86400 * S}, "days away"),
        ({"case_id": ""}, "case id"),
        ({"case_id": "has space"}, "case id"),
        ({"case_id": "x" * 97}, "case id"),
        ({"traffic_class": TrafficClass.BACKFILL}, "cannot be requested"),
        ({"start_us": 1.5}, "integer"),
        ({"requested_by": "a\nb"}, "requested_by"),
    ],
)
def test_bad_requests_name_the_problem(changes: dict[str, object], message: str) -> None:
    known = KNOWN | {f"c{i}" for i in range(MAX_CAMERAS + 1)}
    with pytest.raises(JobError, match=message):
        validate_request(good(**changes), NOW, known)


def test_classes_by_name() -> None:
    assert parse_class("Evidence") is TrafficClass.EVIDENCE
    assert parse_class("archive") is TrafficClass.ARCHIVE
    for bad in ("live", "backfill", "bogus", ""):
        with pytest.raises(JobError, match="cannot be requested"):
            parse_class(bad)


def test_job_ids_and_hold_tags() -> None:
    assert check_job_id("0123456789abcdef") == "0123456789abcdef"
    for bad in ("", "xyz", "0123456789ABCDEF", "0" * 40, None):
        with pytest.raises(JobNotFound):
            check_job_id(bad)
    assert hold_tag("0123456789abcdef") == "vigil-job-0123456789abcdef"


def test_percent_and_gone_summary() -> None:
    view = JobView(
        "0123456789abcdef", "c", ("cam1",), 0, 10, TrafficClass.EVIDENCE, 20, JOB_OPEN,
        0, 0, 0, "", 250, 1000, 1, 4, 0, "",
    )  # fmt: skip
    assert view.percent == 25.0
    assert replace(view, state=JOB_DONE).percent == 100.0
    assert replace(view, bytes_total=0).percent == 0.0
    gone = [GoneRange("cam1", 0, 30 * S, "evicted"), GoneRange("cam1", 60 * S, 90 * S, "gap")]
    assert describe_gone(gone) == "2 range(s), 60 s of requested footage gone"
    assert describe_gone([]) == ""
