"""Pure decisions of the uplink: error classification, resume plan, header, deadline, order."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from edge_agent.model import SegmentFlag, SegmentInfo, SegmentState
from edge_agent.uplink.errors import (
    ConflictError,
    ErrorKind,
    PermanentError,
    RetryableError,
    classify,
    error_for,
)
from edge_agent.uplink.plan import (
    AlreadyThere,
    OfferConflict,
    ResumeFrom,
    ServerOffset,
    build_header,
    plan_resume,
    upload_deadline_s,
)
from edge_agent.uplink.uploader import RetryPolicy, pick_next

SHA = hashlib.sha256(b"segment").hexdigest()
PREV = hashlib.sha256(b"previous").hexdigest()


def seg(
    segment_id: str = "cam1-1000", camera: str = "cam1", start: int = 1000, **kw
) -> SegmentInfo:
    base = dict(
        segment_id=segment_id,
        camera_id=camera,
        start_us=start,
        duration_us=10_000_000,
        size_bytes=5_000,
        sha256=SHA,
        prev_sha256=PREV,
        container="ts",
        flags=SegmentFlag.NONE,
        state=SegmentState.UNSENT,
        filename=f"{camera}/{segment_id}.ts",
    )
    base.update(kw)
    return SegmentInfo(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.UNAVAILABLE, ErrorKind.RETRYABLE),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ErrorKind.RETRYABLE),
        (grpc.StatusCode.DEADLINE_EXCEEDED, ErrorKind.RETRYABLE),
        (grpc.StatusCode.ABORTED, ErrorKind.RETRYABLE),
        (grpc.StatusCode.CANCELLED, ErrorKind.RETRYABLE),
        (grpc.StatusCode.INTERNAL, ErrorKind.RETRYABLE),
        (grpc.StatusCode.UNKNOWN, ErrorKind.RETRYABLE),
        (None, ErrorKind.RETRYABLE),
        (grpc.StatusCode.ALREADY_EXISTS, ErrorKind.CONFLICT),
        (grpc.StatusCode.FAILED_PRECONDITION, ErrorKind.CONFLICT),
        (grpc.StatusCode.INVALID_ARGUMENT, ErrorKind.PERMANENT),
        (grpc.StatusCode.NOT_FOUND, ErrorKind.PERMANENT),
        (grpc.StatusCode.PERMISSION_DENIED, ErrorKind.PERMANENT),
        (grpc.StatusCode.UNAUTHENTICATED, ErrorKind.PERMANENT),
        (grpc.StatusCode.DATA_LOSS, ErrorKind.PERMANENT),
        (grpc.StatusCode.UNIMPLEMENTED, ErrorKind.PERMANENT),
        (grpc.StatusCode.OUT_OF_RANGE, ErrorKind.PERMANENT),
    ],
)
def test_status_codes_classify(code: grpc.StatusCode | None, kind: ErrorKind) -> None:
    assert classify(code) is kind


def test_every_status_code_has_a_classification() -> None:
    kinds = {classify(code) for code in grpc.StatusCode if code is not grpc.StatusCode.OK}
    assert kinds == set(ErrorKind)


def test_error_for_builds_the_tree_and_keeps_the_details() -> None:
    retry = error_for(grpc.StatusCode.UNAVAILABLE, "storage down", "Upload s1")
    conflict = error_for(grpc.StatusCode.ALREADY_EXISTS, "other hash", "Upload s1")
    refused = error_for(grpc.StatusCode.NOT_FOUND, "", "Upload s1")
    assert isinstance(retry, RetryableError) and retry.code == "UNAVAILABLE"
    assert str(retry) == "Upload s1: UNAVAILABLE: storage down"
    assert isinstance(conflict, ConflictError) and isinstance(conflict, PermanentError)
    assert isinstance(refused, PermanentError) and not isinstance(refused, ConflictError)
    assert "no details" in str(refused)


def test_resume_plan_fresh_partial_and_complete() -> None:
    info = seg()
    assert plan_resume(info, ServerOffset(0, False, "")) == ResumeFrom(0)
    assert plan_resume(info, ServerOffset(4096, False, "")) == ResumeFrom(4096)
    # All bytes staged but not committed yet (a crash before commit): send the header only.
    assert plan_resume(info, ServerOffset(5_000, False, "")) == ResumeFrom(5_000)


def test_resume_plan_committed_same_hash_is_done() -> None:
    assert plan_resume(seg(), ServerOffset(5_000, True, SHA.upper())) == AlreadyThere()
    assert plan_resume(seg(), ServerOffset(0, True, "")) == AlreadyThere()


def test_resume_plan_committed_other_hash_offers_the_conflict() -> None:
    other = hashlib.sha256(b"forged").hexdigest()
    assert plan_resume(seg(), ServerOffset(5_000, True, other.upper())) == OfferConflict(other)


@pytest.mark.parametrize("offset", [-1, 5_001, 10**12])
def test_resume_plan_refuses_impossible_offsets(offset: int) -> None:
    with pytest.raises(PermanentError, match="holds"):
        plan_resume(seg(), ServerOffset(offset, False, ""))


def test_header_carries_raw_hashes_offset_and_flags() -> None:
    info = seg(flags=SegmentFlag.DISCONTINUITY | SegmentFlag.TRUNCATED, container="mp4")
    h = build_header(info, 4096, "lease-7")
    assert h.segment_id == info.segment_id and h.camera_id == "cam1"
    assert h.sha256 == bytes.fromhex(SHA) and h.prev_sha256 == bytes.fromhex(PREV)
    assert (h.offset, h.lease_id, h.size_bytes, h.container, h.flags) == (
        4096,
        "lease-7",
        5_000,
        "mp4",
        3,
    )
    assert (h.start_unix_us, h.duration_us) == (1000, 10_000_000)


def test_header_of_a_first_segment_has_an_empty_previous_hash() -> None:
    assert build_header(seg(prev_sha256=""), 0, "").prev_sha256 == b""


def test_deadline_grows_with_size_and_shrinks_with_rate() -> None:
    assert upload_deadline_s(0, 8_000_000) == 30.0
    five_mb = 5_000_000
    assert upload_deadline_s(five_mb, 8_000_000) == pytest.approx(30 + 15)
    assert upload_deadline_s(five_mb, 4_000_000) > upload_deadline_s(five_mb, 8_000_000)
    # Unlimited: assume a slow village link rather than cut a healthy upload short.
    assert upload_deadline_s(five_mb, None) > 400


def test_pick_next_oldest_first_skipping_busy_cameras_and_parked_segments() -> None:
    a1, b1, a2, b2 = (
        seg("a-1", "a", 1),
        seg("b-2", "b", 2),
        seg("a-3", "a", 3),
        seg("b-4", "b", 4),
    )
    unsent = [a1, b1, a2, b2]
    assert pick_next(unsent, set(), {}, now=0.0) is a1
    assert pick_next(unsent, {"a"}, {}, now=0.0) is b1
    assert pick_next(unsent, {"a", "b"}, {}, now=0.0) is None
    # A parked segment is skipped until its time; it does not block later ones of its camera.
    assert pick_next(unsent, set(), {"a-1": 10.0}, now=5.0) is b1
    assert pick_next(unsent, {"b"}, {"a-1": 10.0}, now=5.0) is a2
    assert pick_next(unsent, set(), {"a-1": 10.0}, now=10.0) is a1
    assert pick_next(unsent, set(), {"a-1": float("inf")}, now=1e12) is b1


@pytest.mark.parametrize(
    ("initial", "cap", "park"), [(0.0, 1.0, 1.0), (2.0, 1.0, 1.0), (0.1, 1.0, -1.0)]
)
def test_retry_policy_refuses_nonsense(initial: float, cap: float, park: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(initial_s=initial, cap_s=cap, park_s=park)
