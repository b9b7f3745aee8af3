"""The leadership lease's decisions (controller/leader/lease.py), without I/O.

Examples for each rule, then a property: replicas bidding at random moments, with random
database and network delays and lost answers, never lead at the same instant, and every new
term has a larger epoch than any before it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.leader.lease import (
    Belief,
    Bid,
    Change,
    Failed,
    Lost,
    Row,
    Timing,
    Won,
    announce,
    believe,
    can_take,
    contest,
    next_bid_in,
    renews,
    stepped_down,
)

T = Timing()  # 6 s lease, renew 2 s, margin 1 s
S = 1_000_000
A = Bid("a", "inc-a", "10.0.0.1:7443")
B = Bid("b", "inc-b", "10.0.0.2:7443")


def held(bid: Bid, epoch: int) -> Bid:
    return Bid(bid.holder, bid.incarnation, bid.address, epoch)


# -- the row -------------------------------------------------------------------------------------


def test_an_empty_row_is_taken_with_epoch_one() -> None:
    row = contest(Row(), A, 100 * S, T.lease_us)
    assert row == Row("a", "inc-a", A.address, 1, 106 * S)


def test_an_unexpired_lease_of_another_cannot_be_taken() -> None:
    row = Row("a", "inc-a", A.address, 3, 106 * S)
    assert contest(row, B, 105 * S, T.lease_us) is None
    assert contest(row, B, 106 * S, T.lease_us) is None  # expiry itself still belongs to a


def test_an_expired_lease_is_taken_with_the_next_epoch() -> None:
    row = Row("a", "inc-a", A.address, 3, 106 * S)
    taken = contest(row, B, 106 * S + 1, T.lease_us)
    assert taken is not None and taken.holder == "b" and taken.epoch == 4
    assert taken.address == B.address and taken.expires_at_us == 112 * S + 1


def test_renewing_the_term_held_keeps_the_epoch() -> None:
    row = Row("a", "inc-a", A.address, 3, 106 * S)
    assert renews(row, held(A, 3), 104 * S)
    renewed = contest(row, held(A, 3), 104 * S, T.lease_us)
    assert renewed is not None and renewed.epoch == 3 and renewed.expires_at_us == 110 * S


def test_retaking_ones_own_row_after_stepping_down_starts_a_new_term() -> None:
    row = Row("a", "inc-a", A.address, 3, 106 * S)
    again = contest(row, A, 104 * S, T.lease_us)  # held_epoch 0: a no longer believes it leads
    assert again is not None and again.epoch == 4


def test_renewing_an_epoch_one_no_longer_holds_starts_a_new_term() -> None:
    row = Row("a", "inc-a", A.address, 5, 106 * S)
    again = contest(row, held(A, 3), 104 * S, T.lease_us)
    assert again is not None and again.epoch == 6


def test_another_process_with_the_same_replica_id_waits_for_expiry() -> None:
    row = Row("a", "inc-a", A.address, 3, 106 * S)
    twin = Bid("a", "inc-other", A.address, 3)
    assert not can_take(row, twin, 105 * S)
    assert contest(row, twin, 105 * S, T.lease_us) is None
    late = contest(row, twin, 107 * S, T.lease_us)
    assert late is not None and late.epoch == 4


# -- the belief ------------------------------------------------------------------------------------


def test_a_won_bid_leads_until_its_send_time_plus_lease_minus_margin() -> None:
    b = believe(Belief(), Won(1, 106 * S, 100 * S), 50.0, A, T)
    assert b.leading(50.0) and b.leading(54.999)
    assert not b.leading(55.0)
    assert b.held_epoch(54.0) == 1 and b.held_epoch(55.0) == 0
    assert b.leader_address == A.address


def test_a_late_answer_counts_from_when_the_bid_was_sent() -> None:
    # Sent at 50, answered at 56: the database may give the lease to someone else at 56+.
    b = believe(Belief(), Won(1, 106 * S, 100 * S), 50.0, A, T)
    assert not b.leading(56.0)


def test_no_answer_keeps_the_belief_until_its_deadline() -> None:
    leading = believe(Belief(), Won(2, 106 * S, 100 * S), 50.0, A, T)
    after = believe(leading, Failed("timeout"), 52.0, A, T)
    assert after == leading
    assert after.leading(54.9) and not after.leading(55.0)


def test_a_lost_bid_stops_leading_at_once_and_names_the_leader() -> None:
    leading = believe(Belief(), Won(2, 106 * S, 100 * S), 50.0, A, T)
    lost = believe(leading, Lost(Row("b", "inc-b", B.address, 3, 109 * S), 104 * S), 52.0, A, T)
    assert not lost.leading(52.0)
    assert lost.leader_address == B.address and lost.leader_epoch == 3
    assert lost.leader_expires_in_s == pytest.approx(5.0)


def test_an_expired_row_names_no_leader() -> None:
    lost = believe(Belief(), Lost(Row("b", "inc-b", B.address, 3, 100 * S), 104 * S), 1.0, A, T)
    assert lost.leader_address == "" and lost.leader_holder == ""


def test_bids_are_timed_by_role() -> None:
    leading = believe(Belief(), Won(1, 106 * S, 100 * S), 0.0, A, T)
    assert next_bid_in(leading, Won(1, 106 * S, 100 * S), 0.1, T) == T.renew_s
    assert next_bid_in(leading, Failed("x"), 0.1, T) == T.retry_s
    row = Row("b", "inc-b", B.address, 3, 100 * S + S // 2)
    following = believe(Belief(), Lost(row, 100 * S), 0.0, A, T)
    assert next_bid_in(following, Lost(row, 100 * S), 0.0, T) == pytest.approx(0.55)
    far = Row("b", "inc-b", B.address, 3, 150 * S)
    assert next_bid_in(believe(Belief(), Lost(far, 100 * S), 0, A, T), Lost(far, 0), 0, T) == 2.0


def test_announcements_gain_loss_and_new_terms_once_each() -> None:
    quiet = Change(False, 0)
    leading = believe(Belief(), Won(4, 106 * S, 100 * S), 0.0, A, T)
    assert announce(quiet, leading, 1.0) == Change(True, 4)
    assert announce(Change(True, 4), leading, 1.0) is None
    assert announce(Change(True, 4), leading, 5.0) == Change(False, 0)  # deadline passed
    assert announce(Change(True, 3), leading, 1.0) == Change(True, 4)
    assert announce(Change(True, 4), stepped_down(leading), 1.0) == Change(False, 0)


def test_timing_refuses_a_renewal_too_slow_for_its_lease() -> None:
    with pytest.raises(ValueError, match="renew_s"):
        Timing(lease_s=6.0, renew_s=3.0, margin_s=1.0)
    with pytest.raises(ValueError, match="margin_s"):
        Timing(lease_s=1.0, renew_s=0.2, margin_s=1.0)


# -- the property: never two leaders ------------------------------------------------------------


@dataclass
class Replica:
    bid: Bid
    belief: Belief = field(default_factory=Belief)
    spans: list[tuple[float, float]] = field(default_factory=list)  # [from, until) leading

    def record(self, at: float, new: Belief) -> None:
        """Close the current leading span at `at` (if any), open the new belief's."""
        if self.spans and self.spans[-1][1] > at:
            self.spans[-1] = (self.spans[-1][0], at)
        if new.leading(at):
            self.spans.append((at, new.deadline))
        self.belief = new


# Times in steps of 100 ms, so bids often meet a lease's expiry or a deadline exactly.
bid_plan = st.tuples(
    st.integers(0, 40),  # pause before the bid
    st.integers(0, 20),  # send -> database
    st.integers(0, 20),  # database -> answer
    st.integers(0, 3),  # 0: the answer is lost (the database did apply the bid)
)
STEP_S = 0.1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plans=st.lists(st.lists(bid_plan, min_size=1, max_size=25), min_size=2, max_size=4),
    db_offset_s=st.integers(1, 10**9),  # the database clock: any positive time
)
@example(plans=[[(0, 0, 0, 1)], [(61, 0, 0, 1)]], db_offset_s=1)  # b wins 0.1 s after expiry
@example(plans=[[(0, 0, 0, 1), (20, 0, 45, 0)], [(59, 2, 0, 1)]], db_offset_s=7)  # a's answer lost
def test_replicas_never_lead_at_once_and_epochs_only_grow(
    plans: list[list[tuple[int, int, int, int]]], db_offset_s: int
) -> None:
    replicas = [Replica(Bid(f"r{i}", f"inc{i}", f"10.0.0.{i}:7443")) for i in range(len(plans))]
    row = Row()
    # Events (time s, order, kind, replica, bid index); each replica's bids run one at a time.
    events: list[tuple[float, int, str, int, int]] = []
    seq = 0
    for i, plan in enumerate(plans):
        heapq.heappush(events, (plan[0][0] * STEP_S, seq, "send", i, 0))
        seq += 1
    pending: dict[int, tuple[float, Bid, Won | Lost | None]] = {}
    epochs_seen: list[int] = []
    while events:
        at, _, kind, i, k = heapq.heappop(events)
        r = replicas[i]
        pause, to_db, to_me, delivered = plans[i][k]
        if kind == "send":
            bid = held(r.bid, r.belief.held_epoch(at))
            pending[i] = (at, bid, None)
            heapq.heappush(events, (at + to_db * STEP_S, seq, "db", i, k))
        elif kind == "db":
            sent, bid, _ = pending[i]
            now_us = round(at * 1e6) + db_offset_s * S
            after = contest(row, bid, now_us, T.lease_us)
            if after is None:
                outcome: Won | Lost = Lost(row, now_us)
            else:
                if after.epoch != row.epoch:
                    assert after.epoch > max(epochs_seen, default=0)
                    epochs_seen.append(after.epoch)
                row = after
                outcome = Won(after.epoch, after.expires_at_us, now_us)
            pending[i] = (sent, bid, outcome)
            heapq.heappush(events, (at + to_me * STEP_S, seq, "answer", i, k))
        else:
            sent, bid, result = pending.pop(i)
            assert result is not None
            answer = result if delivered else Failed("lost")
            r.record(at, believe(r.belief, answer, sent, r.bid, T))
            if k + 1 < len(plans[i]):
                heapq.heappush(events, (at + plans[i][k + 1][0] * STEP_S, seq, "send", i, k + 1))
        seq += 1
    spans = [(s, e, i) for i, r in enumerate(replicas) for s, e in r.spans if e > s]
    for s1, e1, i1 in spans:
        for s2, e2, i2 in spans:
            if i1 != i2:
                assert e1 <= s2 or e2 <= s1, f"r{i1} leads in [{s1}, {e1}), r{i2} in [{s2}, {e2})"
