"""The audit hash chain and signed checkpoints: any edit, deletion or reordering shows."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.audit.aggregate import FLUSH_INTERVAL_US, FetchAggregator
from controller.audit.chain import (
    GENESIS_HASH,
    MAX_DETAIL_CHARS,
    AuditEntry,
    AuditEvent,
    Checkpoint,
    make_entry,
    rehash,
    sign_checkpoint,
    verify_log,
)
from controller.grants.codec import raw_public_key

KEY = Ed25519PrivateKey.generate()
PUB = raw_public_key(KEY)
T = 1_767_225_600_000_000


def build(n: int, every: int = 4) -> tuple[list[AuditEntry], list[Checkpoint]]:
    entries: list[AuditEntry] = []
    cps: list[Checkpoint] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        e = make_entry(
            i,
            T + i,
            AuditEvent("playlist", "u1", "chengxian", f"cam-{i % 3}", detail={"i": i}),
            prev,
        )
        entries.append(e)
        prev = e.hash
        if i % every == 0:
            cps.append(sign_checkpoint(i, e.hash, T + i, cps[-1].seq if cps else 0, KEY))
    return entries, cps


def test_an_untouched_log_verifies() -> None:
    entries, cps = build(10)
    report = verify_log(entries, cps, PUB)
    assert report.ok, report.problems
    assert (report.entries, report.last_seq, report.checkpoints) == (10, 10, 2)
    assert report.covered_seq == 8 and report.uncovered == 2


def test_an_edited_entry_is_detected() -> None:
    entries, cps = build(10)
    entries[2] = replace(entries[2], actor_user="someone-else")
    report = verify_log(entries, cps, PUB)
    assert any("entry 3 was edited" in p for p in report.problems)


def test_an_edit_with_recomputed_hashes_is_caught_by_the_checkpoint() -> None:
    entries, cps = build(10)
    forged: list[AuditEntry] = []
    prev = GENESIS_HASH
    for e in entries:
        e = replace(e, prev_hash=prev, camera_id="hidden" if e.seq == 3 else e.camera_id)
        e = replace(e, hash=rehash(e))
        forged.append(e)
        prev = e.hash
    report = verify_log(forged, cps, PUB)
    assert any("differs from its signed checkpoint" in p for p in report.problems)


def test_a_deleted_entry_is_detected() -> None:
    entries, cps = build(10)
    del entries[4]
    report = verify_log(entries, cps, PUB)
    assert any("entries 5..5 are missing" in p for p in report.problems)
    assert any("entry 6 does not link" in p for p in report.problems)


def test_reordered_entries_are_detected() -> None:
    entries, cps = build(10)
    entries[3], entries[4] = entries[4], entries[3]
    report = verify_log(entries, cps, PUB)
    assert not report.ok
    assert any("out of order" in p or "does not link" in p for p in report.problems)


def test_cutting_the_tail_past_a_checkpoint_is_detected() -> None:
    entries, cps = build(10)
    report = verify_log(entries[:6], cps, PUB)
    assert any("deleted from the end" in p for p in report.problems)


def test_cutting_the_tail_and_its_checkpoint_needs_an_anchor() -> None:
    entries, cps = build(10)
    assert verify_log(entries[:6], cps[:1], PUB).ok  # undetectable without an outside copy...
    report = verify_log(entries[:6], cps[:1], PUB, anchor=cps[1])
    assert any("anchor" in p for p in report.problems)  # ...and caught with one


def test_forged_and_deleted_checkpoints() -> None:
    entries, cps = build(12)
    forged = replace(cps[1], signature=Ed25519PrivateKey.generate().sign(b"x").hex())
    report = verify_log(entries, [cps[0], forged, cps[2]], PUB)
    assert any("signature invalid" in p for p in report.problems)
    report = verify_log(entries, [cps[0], cps[2]], PUB)
    assert any("a checkpoint was deleted" in p for p in report.problems)
    other_key = raw_public_key(Ed25519PrivateKey.generate())
    assert not verify_log(entries, cps, other_key).ok


def test_entries_are_clipped_and_detail_is_canonical() -> None:
    e = make_entry(1, T, AuditEvent("x" * 1000, detail={"b": 1, "a": "值"}), GENESIS_HASH)
    assert len(e.action) == 256
    assert e.detail == '{"a":"值","b":1}'
    big = make_entry(2, T, AuditEvent("x", detail={"blob": "y" * 20000}), e.hash)
    assert len(big.detail) <= MAX_DETAIL_CHARS and "truncated" in big.detail


def test_fetch_aggregation_makes_one_event_per_key() -> None:
    agg = FetchAggregator(max_keys=3)
    for i in range(50):
        assert not agg.record("g1", "cam-1", "u1", "o1", f"s{i}", 1000, T + i)
    agg.record("g2", "cam-2", "u2", "o1", "x", 5, T + 60)
    events = agg.drain()
    assert len(events) == 2 and len(agg) == 0
    first = next(e for e in events if e.grant_id == "g1")
    assert first.action == "segment_fetch"
    assert first.detail["count"] == 50 and first.detail["bytes"] == 50_000
    assert (first.detail["first_segment"], first.detail["last_segment"]) == ("s0", "s49")
    assert agg.drain() == []


@pytest.mark.parametrize("trigger", ["time", "keys"])
def test_fetch_aggregation_says_when_to_flush(trigger: str) -> None:
    agg = FetchAggregator(max_keys=3)
    agg.record("g", "c", "u", "o", "s", 1, T)
    if trigger == "time":
        assert agg.record("g", "c", "u", "o", "s", 1, T + FLUSH_INTERVAL_US)
    else:
        agg.record("g2", "c", "u", "o", "s", 1, T)
        assert agg.record("g3", "c", "u", "o", "s", 1, T)
