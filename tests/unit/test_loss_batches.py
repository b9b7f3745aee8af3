"""Batched eviction reports: one event carries many loss facts, each stored and confirmed on
its own; malformed and oversize batches or facts are refused, facts on cameras the device did
not announce are held for the catalog's ownership check (pure, issue 15)."""

from __future__ import annotations

import pytest

from controller.fleet.decode import MAX_PAYLOAD_BYTES, Decoded, decode
from controller.fleet.loss_facts import MAX_LOSSES_PER_EVENT, loss_facts
from controller.fleet.ratelimit import RatePolicy, take
from controller.fleet.receipts import receipts
from controller.fleet.transitions import event_facts, event_history
from edge_agent.health import payloads as pl
from edge_agent.health.evictions import DEFAULT_PER_MESSAGE, EvictionReports
from edge_agent.model import EvictionRecord
from protos.vigil.v1 import fleet_pb2

S = 1_000_000
T0 = 1_793_491_200 * S
TOPIC = "vigil/v1/wudu/v001/nvr-1/event"


def rec(i: int, camera: str = "cam1") -> EvictionRecord:
    start = T0 + i * 10 * S
    return EvictionRecord(
        i, f"{camera}-seg-{i:06d}", camera, start, start + 10 * S, 1000, False, start, False
    )


def batch(recs: list[EvictionRecord], seq: int = 1) -> fleet_pb2.Event:
    return pl.eviction_batch(recs, "nvr-1", 3, seq, T0 + 10**9)


def test_a_long_outage_s_backlog_fits_the_rate_limit_and_every_fact_is_stored() -> None:
    backlog = [rec(i) for i in range(1000)]
    reports = EvictionReports()
    due = reports.due(backlog, 0.0)
    messages = reports.messages(due)
    assert (
        len(due) == 200
        and len(messages) == 4
        and all(len(m) == DEFAULT_PER_MESSAGE for m in messages)
    )
    # Each message is one token of the device's bucket (burst 40): all of them pass.
    bucket, policy = None, RatePolicy()
    rows = []
    for seq, part in enumerate(messages, 1):
        ok, bucket = take(bucket, 0.0, policy)
        assert ok
        payload = batch(list(part), seq).SerializeToString()
        assert len(payload) < MAX_PAYLOAD_BYTES // 4
        decoded = decode(TOPIC, payload)
        assert isinstance(decoded, Decoded) and isinstance(decoded.message, fleet_pb2.Event)
        rows += event_facts(decoded.message, T0, {"cam1"})[1]
    assert [r.fact_id for r in rows] == [f"cam1-seg-{i:06d}" for i in range(200)]
    assert rows[0].start_us == T0 and rows[0].end_us == T0 + 10 * S and rows[0].size_bytes == 1000
    assert {r.seq for r in rows} == {1, 2, 3, 4} and {r.session for r in rows} == {3}
    # Per-fact confirmation: the receipts name every fact, and the agent marks exactly those.
    facts = receipts(rows)["nvr-1"]
    reports.receipt(facts[:150])
    assert reports.confirmed(backlog) == list(range(150))


def test_an_oversize_batch_is_refused_whole() -> None:
    ev = batch([rec(i) for i in range(MAX_LOSSES_PER_EVENT + 1)])
    facts = loss_facts(ev, T0)
    assert facts.rows == [] and len(facts.refused) == MAX_LOSSES_PER_EVENT + 1
    assert "batch of 65 losses > 64" in facts.refused[0][1]
    assert len(loss_facts(batch([rec(i) for i in range(64)]), T0).rows) == 64
    with pytest.raises(ValueError):
        EvictionReports(per_message=65)


def test_malformed_facts_are_refused_one_by_one_and_the_rest_stored() -> None:
    ev = batch([rec(1), rec(2), rec(3), rec(4), rec(5), rec(6)])
    ev.losses[1].fact_id = ""
    ev.losses[2].range.end_unix_us = ev.losses[2].range.start_unix_us - 1  # reversed
    ev.losses[3].camera_id = "../etc"
    ev.losses[4].bytes = -5
    ev.losses.add().CopyFrom(ev.losses[0])  # the same fact twice: stored once
    ev.losses[5].range.end_unix_us = ev.losses[5].range.start_unix_us + 2 * 86_400 * S
    facts = loss_facts(ev, T0)
    assert [r.fact_id for r in facts.rows] == ["cam1-seg-000001"]
    whys = [why for _f, why in facts.refused]
    assert len(whys) == 5
    assert "fact id" in whys[0] and "reversed" in whys[1] and "camera id" in whys[2]
    assert "negative size" in whys[3] and "longer than a day" in whys[4]


def test_garbage_bytes_are_a_rejected_message_not_a_crash() -> None:
    assert not isinstance(decode(TOPIC, b"\x5a\xff\xff\xff\xff\xff"), Decoded)
    assert not isinstance(decode(TOPIC, b"\x00" * (MAX_PAYLOAD_BYTES + 1)), Decoded)


def test_a_fact_on_a_camera_the_device_did_not_announce_waits_for_the_ownership_check() -> None:
    """Not stored with the announced ones, not refused either: the camera may have left the
    agent's config with segments still buffered; the history writer keeps the fact only if
    the catalog registers the camera to the device (tests/integration/test_unannounced_losses)."""
    ev = batch([rec(1), rec(2, camera="other-cam")])
    facts = loss_facts(ev, T0, {"cam1"})
    assert [r.camera_id for r in facts.rows] == ["cam1"] and facts.refused == []
    assert [r.fact_id for r in facts.unannounced] == ["other-cam-seg-000002"]
    # The single-fact form is held to the same rule; an unknown birth (no cameras) is not.
    single = pl.event(pl.eviction_event(rec(3, camera="other-cam")), "nvr-1", 3, 1)
    assert event_facts(single, T0, {"cam1"})[1] == []
    assert [r.camera_id for r in event_history(single, T0, {"cam1"})[1].unannounced] == [
        "other-cam"
    ]
    assert len(event_facts(single, T0)[1]) == 1
