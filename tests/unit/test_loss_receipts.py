"""Eviction reports until confirmed (agent) and the receipts that confirm them (controller)."""

from __future__ import annotations

import pytest

from controller.catalog.history_models import LossEventRow
from controller.fleet.receipts import FACTS_PER_RECEIPT, VERB, receipt_payloads, receipts
from controller.fleet.transitions import event_facts
from edge_agent.health import payloads as pl
from edge_agent.health.evictions import LOSS_RECORDED_VERB, EvictionReports, fact_id
from edge_agent.model import EvictionRecord
from protos.vigil.v1 import fleet_pb2


def rec(i: int, uploaded: bool = False) -> EvictionRecord:
    return EvictionRecord(i, f"seg-{i}", "cam1", i * 10, i * 10 + 10, 100, uploaded, i, False)


def test_records_are_due_once_then_again_after_the_resend_interval() -> None:
    reports = EvictionReports(resend_s=30.0, batch=10)
    pending = [rec(1), rec(2)]
    assert reports.due(pending, 0.0) == pending
    for r in pending:
        reports.sent(r, 0.0)
    assert reports.due(pending, 29.9) == []
    assert reports.due(pending, 30.0) == pending
    reports.sent(pending[0], 30.0)
    assert reports.resent_total == 1 and reports.sent_total == 3


def test_a_reconnection_makes_everything_unconfirmed_due_at_once() -> None:
    reports = EvictionReports(resend_s=30.0)
    reports.sent(rec(1), 0.0)
    reports.reconnected()
    assert reports.due([rec(1)], 1.0) == [rec(1)]


def test_only_confirmed_facts_are_marked_and_receipts_for_others_are_forgotten() -> None:
    reports = EvictionReports()
    pending = [rec(1), rec(2), rec(3, uploaded=True)]
    assert reports.confirmed(pending) == [3]  # an uploaded eviction lost nothing
    pending.pop()  # marked reported in the buffer
    reports.receipt(["seg-2", "seg-99"])
    assert reports.confirmed(pending) == [2]
    assert reports.confirmed(pending) == []  # receipts are used once
    assert reports.confirmed_total == 2


def test_a_backlog_goes_out_in_batches_oldest_first() -> None:
    reports = EvictionReports(batch=2)
    pending = [rec(i) for i in range(1, 6)]
    first = reports.due(pending, 0.0)
    assert first == pending[:2]
    for r in first:
        reports.sent(r, 0.0)
    assert reports.due(pending, 0.1) == pending[2:4]


def test_forget_missing_drops_records_no_longer_pending() -> None:
    reports = EvictionReports(resend_s=30.0)
    reports.sent(rec(1), 0.0)
    reports.forget_missing([])
    assert reports.due([rec(1)], 1.0) == [rec(1)]  # known again only as new


def test_bad_settings_refused() -> None:
    with pytest.raises(ValueError):
        EvictionReports(resend_s=0)
    with pytest.raises(ValueError):
        EvictionReports(batch=0)


def test_the_fact_id_travels_and_becomes_the_loss_key() -> None:
    msg = pl.event(pl.eviction_event(rec(7)), "nvr-1", 5, 9)
    msg.fact_id = fact_id(rec(7))
    wire = fleet_pb2.Event.FromString(msg.SerializeToString())
    _, losses = event_facts(wire, 123)
    assert [(loss.fact_id, loss.session, loss.seq) for loss in losses] == [("seg-7", 5, 9)]


def loss(device: str, fact: str) -> LossEventRow:
    return LossEventRow(
        device_id=device, camera_id="c", session=1, seq=1, fact_id=fact,
        start_us=0, end_us=1, reason="buffer_full", at_us=0, received_us=0,
    )  # fmt: skip


def test_receipts_group_by_device_once_each_and_skip_reports_without_a_fact() -> None:
    rows = [loss("a", "s1"), loss("b", "s2"), loss("a", "s1"), loss("a", "s3"), loss("c", "")]
    assert receipts(rows) == {"a": ["s1", "s3"], "b": ["s2"]}


def test_receipt_payloads_are_commands_the_agent_reads_in_chunks() -> None:
    assert VERB == LOSS_RECORDED_VERB
    facts = [f"seg-{i}" for i in range(FACTS_PER_RECEIPT + 5)]
    payloads = receipt_payloads(facts)
    assert len(payloads) == 2
    decoded = [fleet_pb2.Command.FromString(p) for p in payloads]
    assert all(c.verb == VERB for c in decoded)
    assert [f for c in decoded for f in c.fact_ids] == facts
