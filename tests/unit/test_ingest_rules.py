"""The pure ingest decisions: header validation, resume offsets, chunk accounting, the chain."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.ingest.rules import (
    CONTIGUOUS_US,
    MIN_START_US,
    ChainFlag,
    Code,
    Header,
    IngestError,
    Limits,
    Neighbour,
    StagingAction,
    check_chunk,
    check_complete,
    check_ids,
    check_scope,
    decide_chain,
    decide_offset,
    hash_hex,
    validate_header,
)

NOW = 1_767_225_600_000_000  # 2026-01-01
LIMITS = Limits(max_segment_bytes=10_000, max_chunk_bytes=1_000)
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def header(**changes: object) -> Header:
    base = Header(
        segment_id="cam1-000001",
        camera_id="cam1",
        start_us=NOW - 20_000_000,
        duration_us=10_000_000,
        size_bytes=5_000,
        sha256=SHA_B,
        prev_sha256=SHA_A,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def refused(code: Code, fn: object, *args: object) -> str:
    with pytest.raises(IngestError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.code is code
    return info.value.message


def test_a_good_header_passes_and_gets_the_default_container() -> None:
    h = validate_header(header(container=""), LIMITS, NOW)
    assert h.container == "ts"
    assert validate_header(header(container="mp4"), LIMITS, NOW).container == "mp4"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"segment_id": ""}, "segment_id"),
        ({"segment_id": "../etc/passwd"}, "segment_id"),
        ({"segment_id": "a/b"}, "segment_id"),
        ({"segment_id": "x" * 129}, "segment_id"),
        ({"camera_id": ".hidden"}, "camera_id"),
        ({"sha256": "ab"}, "sha256"),
        ({"prev_sha256": "abc"}, "prev_sha256"),
        ({"size_bytes": 0}, "size_bytes must be positive"),
        ({"size_bytes": 10_001}, "exceeds the segment limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 5_001}, "offset"),
        ({"start_us": MIN_START_US - 1}, "before 2000"),
        ({"start_us": 0}, "before 2000"),
        ({"start_us": NOW + LIMITS.max_future_us + 1}, "in the future"),
        ({"duration_us": 0}, "duration_us"),
        ({"duration_us": LIMITS.max_duration_us + 1}, "duration_us"),
        ({"container": "avi"}, "container"),
        ({"flags": 8}, "unknown bits"),
        ({"lease_id": "l" * 129}, "lease_id"),
        ({"segment_id": "cam2-000001"}, "not in camera cam1's namespace"),
        ({"segment_id": "cam1"}, "namespace"),
        ({"segment_id": "cam1-"}, "namespace"),
        ({"segment_id": "cam10-1"}, "namespace"),
    ],
)
def test_bad_headers_are_refused_with_the_field_named(
    changes: dict[str, object], words: str
) -> None:
    message = refused(Code.INVALID_ARGUMENT, validate_header, header(**changes), LIMITS, NOW)
    assert words in message


def test_a_segment_up_to_the_future_limit_is_accepted() -> None:
    validate_header(header(start_us=NOW + LIMITS.max_future_us), LIMITS, NOW)


def test_hash_from_the_wire() -> None:
    assert hash_hex(b"\x01" * 32, "sha256", True) == "01" * 32
    assert hash_hex(b"", "prev_sha256", False) == ""
    assert "32 bytes" in refused(Code.INVALID_ARGUMENT, hash_hex, b"", "sha256", True)
    assert "31" in refused(Code.INVALID_ARGUMENT, hash_hex, b"\x00" * 31, "prev_sha256", False)


def test_ids_check() -> None:
    check_ids("cam1-2026-01-01T00:00:00", "cam_1.main")
    refused(Code.INVALID_ARGUMENT, check_ids, "seg 1", "cam1")
    refused(Code.INVALID_ARGUMENT, check_ids, "seg1", "cam/1")


def test_segment_ids_are_scoped_to_their_camera() -> None:
    """Ids of one camera can never be taken through another: they must begin with it."""
    check_scope("cam1-1767225600000000", "cam1")
    check_scope("cam1-1767225600000000-1", "cam1")  # the agent's duplicate-start suffix
    check_scope("cam-1-x", "cam-1")
    for segment_id, camera_id in [
        ("cam1-1767225600000000", "cam2"),  # another camera's scheme
        ("cam1-1767225600000000", "cam"),  # a prefix without the separator
        ("xcam1-1", "cam1"),
        ("cam1", "cam1"),
    ]:
        message = refused(Code.INVALID_ARGUMENT, check_scope, segment_id, camera_id)
        assert f"begin with '{camera_id}-'" in message


# --- resume offsets ---------------------------------------------------------------------


def test_offset_zero_with_nothing_staged_starts_fresh() -> None:
    plan = decide_offset(0, None, False)
    assert (plan.action, plan.start) == (StagingAction.FRESH, 0)


def test_resume_at_exactly_what_is_staged_continues() -> None:
    plan = decide_offset(4096, 4096, True)
    assert (plan.action, plan.start) == (StagingAction.CONTINUE, 4096)


def test_resume_below_what_is_staged_drops_the_surplus() -> None:
    plan = decide_offset(1000, 4096, True)
    assert (plan.action, plan.start) == (StagingAction.CONTINUE, 1000)


def test_restart_from_zero_discards_the_staging() -> None:
    assert decide_offset(0, 4096, True).action is StagingAction.FRESH


def test_resume_beyond_what_is_staged_is_aborted_with_the_right_offset() -> None:
    message = refused(Code.ABORTED, decide_offset, 8192, 4096, True)
    assert "resume from 4096" in message


def test_resume_with_nothing_staged_says_resume_from_zero() -> None:
    assert "resume from 0" in refused(Code.ABORTED, decide_offset, 10, None, False)


def test_staging_of_a_different_segment_is_not_resumed() -> None:
    assert decide_offset(0, 4096, False).action is StagingAction.FRESH
    assert "resume from 0" in refused(Code.ABORTED, decide_offset, 4096, 4096, False)


@given(st.integers(0, 10_000), st.one_of(st.none(), st.integers(0, 10_000)), st.booleans())
def test_offset_decision_never_skips_bytes(requested: int, staged: int | None, ok: bool) -> None:
    try:
        plan = decide_offset(requested, staged, ok)
    except IngestError as exc:
        assert exc.code is Code.ABORTED
        return
    assert plan.start == requested
    if plan.action is StagingAction.CONTINUE:
        assert staged is not None and ok and plan.start <= staged


def test_same_segment_ignores_offset_and_lease() -> None:
    assert header(offset=10, lease_id="l1").same_segment(header())
    assert not header(size_bytes=4_999).same_segment(header())
    assert not header(sha256=SHA_C).same_segment(header())


# --- chunks and completion ----------------------------------------------------------------


def test_chunks_within_limits_pass() -> None:
    check_chunk(0, 1_000, 5_000, 1_000)
    check_chunk(4_000, 1_000, 5_000, 1_000)


def test_a_chunk_over_the_limit_is_refused() -> None:
    assert "chunk limit" in refused(Code.INVALID_ARGUMENT, check_chunk, 0, 1_001, 5_000, 1_000)


def test_more_bytes_than_declared_are_refused() -> None:
    message = refused(Code.INVALID_ARGUMENT, check_chunk, 4_500, 600, 5_000, 1_000)
    assert "more bytes than declared" in message and "holds 4500" in message


def test_completion_needs_every_byte() -> None:
    message = refused(Code.INVALID_ARGUMENT, check_complete, 4_000, 5_000, SHA_B, SHA_B)
    assert "fewer than declared" in message and "4000" in message


def test_completion_needs_the_declared_hash() -> None:
    message = refused(Code.DATA_LOSS, check_complete, 5_000, 5_000, SHA_C, SHA_B)
    assert "sha256 mismatch" in message
    check_complete(5_000, 5_000, SHA_B, SHA_B)


# --- the chain ------------------------------------------------------------------------------


def neighbour(sid: str, start: int, sha: str, prev: str = "", flag: str = "") -> Neighbour:
    return Neighbour(sid, start, start + 10_000_000, sha, prev, flag)


H = header()  # starts at NOW - 20 s, prev = SHA_A, sha = SHA_B
BEFORE = H.start_us - 10_000_000  # a segment that ends exactly where H starts
AFTER = H.end_us  # a segment that starts exactly where H ends


def test_first_segment_of_a_camera_is_ok() -> None:
    assert decide_chain(header(prev_sha256=""), None, None).flag is ChainFlag.OK


def test_link_to_the_previous_segment_is_ok() -> None:
    verdict = decide_chain(H, neighbour("p", BEFORE, SHA_A), None)
    assert verdict.chain_ok and verdict.flag is ChainFlag.OK


def test_link_to_a_segment_the_catalog_lacks_is_a_gap() -> None:
    assert decide_chain(H, None, None).flag is ChainFlag.GAP


def test_mismatch_with_a_distant_previous_segment_is_a_gap() -> None:
    far = BEFORE - 3 * CONTIGUOUS_US
    verdict = decide_chain(H, neighbour("p", far, SHA_C), None)
    assert verdict.flag is ChainFlag.GAP and not verdict.chain_ok


def test_mismatch_with_a_back_to_back_previous_segment_is_a_chain_break() -> None:
    assert decide_chain(H, neighbour("p", BEFORE, SHA_C), None).flag is ChainFlag.CHAIN_BREAK


def test_empty_link_after_an_existing_segment_is_a_chain_break() -> None:
    far = BEFORE - 3 * CONTIGUOUS_US
    verdict = decide_chain(header(prev_sha256=""), neighbour("p", far, SHA_A), None)
    assert verdict.flag is ChainFlag.CHAIN_BREAK


def test_a_later_segment_pointing_elsewhere_back_to_back_is_a_chain_break() -> None:
    following = neighbour("n", AFTER, SHA_C, prev=SHA_C)
    verdict = decide_chain(H, neighbour("p", BEFORE, SHA_A), following)
    assert verdict.flag is ChainFlag.CHAIN_BREAK


def test_a_distant_later_segment_pointing_elsewhere_is_not_this_ones_fault() -> None:
    following = neighbour("n", AFTER + 5 * CONTIGUOUS_US, SHA_C, prev=SHA_C)
    assert decide_chain(H, neighbour("p", BEFORE, SHA_A), following).flag is ChainFlag.OK


def test_a_flagged_later_segment_linking_to_this_one_is_healed() -> None:
    following = neighbour("n", AFTER, SHA_C, prev=SHA_B, flag="gap")
    verdict = decide_chain(H, neighbour("p", BEFORE, SHA_A), following)
    assert verdict.flag is ChainFlag.OK and verdict.heal_next == "n"
    clean = neighbour("n", AFTER, SHA_C, prev=SHA_B)
    assert decide_chain(H, None, clean).heal_next is None


def test_a_chain_break_on_the_later_segment_is_never_healed() -> None:
    # Its break may be about its own successor; this arrival proves only the link to it.
    broken = neighbour("n", AFTER, SHA_C, prev=SHA_B, flag="chain_break")
    verdict = decide_chain(H, neighbour("p", BEFORE, SHA_A), broken)
    assert verdict.flag is ChainFlag.OK and verdict.heal_next is None
