"""The leadership lease, decided without I/O: what the lease row becomes when a replica bids
for it, what a replica believes afterwards, and when it asks again.

The row (`controller.leader.tables.LeaderLease`) has one holder at a time: a replica id, its
incarnation (random per process, so a second process started by mistake with the same
replica id never renews the first one's lease), its advertised gRPC address, a fencing
`epoch` and `expires_at_us` on the database's clock. One conditional UPDATE is every bid
(`contest` is its reference semantics; `controller.leader.election` runs it as SQL):

- the row is taken when it has expired, or is already this incarnation's;
- the epoch stays only when the bidder renews the term it believes it holds (same holder,
  incarnation and epoch, not expired); every other win, even a replica re-taking its own row
  after it stepped down, starts a new term with epoch + 1.

So two replicas can never hold the row at once: the database serialises the UPDATEs, and the
second sees the first one's unexpired lease.

What a replica believes (`Belief`) never depends on wall clocks agreeing: a bid is timed on
the replica's own monotonic clock from *before* it was sent, and the database sets the
expiry from its own clock *after* it received it, so `sent + lease_s` is never later than
the moment any other replica can see the row expired. The replica stops leading `margin_s`
before even that, which covers the scheduler's tick (it notices within one) and clock rate
drift (ppm). A leader whose renewals fail (database down, a stuck connection) therefore
steps down on time by itself; no message is needed for that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

LEASE_NAME = "scheduler"


@dataclass(frozen=True, slots=True)
class Timing:
    """Lease length, renewal period and the safety margin, in seconds.

    Takeover after a leader dies takes at most `lease_s` + `poll_s` (a follower bids right
    after the expiry it last read; `poll_s` bounds the wait when it read none).
    """

    lease_s: float = 6.0
    renew_s: float = 2.0
    margin_s: float = 1.0
    retry_s: float = 0.5  # after a failed bid (database unreachable)

    def __post_init__(self) -> None:
        if not 0 < self.margin_s < self.lease_s:
            raise ValueError("margin_s must be positive and below lease_s")
        if not 0 < self.renew_s <= (self.lease_s - self.margin_s) / 2:
            raise ValueError(
                "renew_s must leave time for two renewals before the leader steps down "
                f"(renew_s <= (lease_s - margin_s) / 2 = {(self.lease_s - self.margin_s) / 2:g})"
            )
        if not 0 < self.retry_s <= self.renew_s:
            raise ValueError("retry_s must be positive and at most renew_s")

    @property
    def lease_us(self) -> int:
        return int(self.lease_s * 1_000_000)


@dataclass(frozen=True, slots=True)
class Row:
    """The lease row as stored (times on the database's clock, µs)."""

    holder: str = ""
    incarnation: str = ""
    address: str = ""
    epoch: int = 0
    expires_at_us: int = 0

    def expired(self, now_us: int) -> bool:
        return self.expires_at_us < now_us


@dataclass(frozen=True, slots=True)
class Bid:
    """One replica's bid: who it is, and the epoch it believes it holds (0: none)."""

    holder: str
    incarnation: str
    address: str
    held_epoch: int = 0


def can_take(row: Row, bid: Bid, now_us: int) -> bool:
    """The UPDATE's WHERE: expired, or this very incarnation's already."""
    mine = row.holder == bid.holder and row.incarnation == bid.incarnation
    return mine or row.expired(now_us)


def renews(row: Row, bid: Bid, now_us: int) -> bool:
    """The UPDATE's CASE: the bidder still holds the term it names (the epoch stays)."""
    return (
        bid.held_epoch > 0
        and row.holder == bid.holder
        and row.incarnation == bid.incarnation
        and row.epoch == bid.held_epoch
        and not row.expired(now_us)
    )


def contest(row: Row, bid: Bid, now_us: int, lease_us: int) -> Row | None:
    """The row after `bid` at database time `now_us`; None: the bid lost (row unchanged)."""
    if not can_take(row, bid, now_us):
        return None
    epoch = row.epoch if renews(row, bid, now_us) else row.epoch + 1
    return Row(bid.holder, bid.incarnation, bid.address, epoch, now_us + lease_us)


# --- what a replica believes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Won:
    """The bid won: this replica holds `epoch` until `expires_at_us` (database clock)."""

    epoch: int
    expires_at_us: int
    db_now_us: int


@dataclass(frozen=True, slots=True)
class Lost:
    """The bid lost: the row as read right after (someone else holds it, or held it)."""

    row: Row
    db_now_us: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The bid got no answer (database unreachable, timed out)."""

    error: str


Outcome = Won | Lost | Failed


@dataclass(frozen=True, slots=True)
class Belief:
    """What a replica believes after its latest bid (monotonic seconds of its own clock).

    `epoch` > 0 with `deadline` in the future: this replica leads. `leader_*` name the
    current holder as last read (this replica when it leads), for redirecting agents.
    """

    epoch: int = 0
    deadline: float = float("-inf")
    leader_holder: str = ""
    leader_address: str = ""
    leader_epoch: int = 0
    leader_expires_in_s: float = 0.0  # as last read, on the database's clock

    def leading(self, mono: float) -> bool:
        return self.epoch > 0 and mono < self.deadline

    def held_epoch(self, mono: float) -> int:
        """The epoch to renew in the next bid (0 once this replica no longer leads)."""
        return self.epoch if self.leading(mono) else 0


def believe(before: Belief, outcome: Outcome, sent_mono: float, me: Bid, timing: Timing) -> Belief:
    """The belief after a bid sent at `sent_mono` (monotonic, taken before sending)."""
    if isinstance(outcome, Won):
        return Belief(
            epoch=outcome.epoch,
            deadline=sent_mono + timing.lease_s - timing.margin_s,
            leader_holder=me.holder,
            leader_address=me.address,
            leader_epoch=outcome.epoch,
            leader_expires_in_s=(outcome.expires_at_us - outcome.db_now_us) / 1e6,
        )
    if isinstance(outcome, Lost):
        row = outcome.row
        remaining = (row.expires_at_us - outcome.db_now_us) / 1e6
        live = remaining >= 0 and bool(row.holder)
        return Belief(
            leader_holder=row.holder if live else "",
            leader_address=row.address if live else "",
            leader_epoch=row.epoch,
            leader_expires_in_s=max(remaining, 0.0),
        )
    # No answer: keep believing until the deadline passes on its own (leading() checks it).
    return before


def next_bid_in(belief: Belief, outcome: Outcome, mono: float, timing: Timing) -> float:
    """Seconds until the next bid: renew every renew_s while leading; retry soon after a
    failure; a follower bids just after the lease it read expires (at most poll, renew_s)."""
    if isinstance(outcome, Failed):
        return timing.retry_s
    if belief.leading(mono):
        return timing.renew_s
    if isinstance(outcome, Lost) and belief.leader_holder:
        return min(timing.renew_s, belief.leader_expires_in_s + 0.05)
    return timing.renew_s


@dataclass(frozen=True, slots=True)
class Change:
    """Leadership as a subscriber last heard it: leading with `epoch`, or not (epoch 0)."""

    leading: bool
    epoch: int


def announce(last: Change, belief: Belief, mono: float) -> Change | None:
    """What subscribers must hear now, given what they heard `last`: None if nothing changed
    (a lost lease is announced by whoever looks first after its deadline, with or without
    an answer from the database)."""
    now = Change(belief.leading(mono), belief.epoch if belief.leading(mono) else 0)
    return None if now == last else now


def stepped_down(belief: Belief) -> Belief:
    """The belief after letting the lease go (clean shutdown)."""
    return replace(belief, epoch=0, deadline=float("-inf"), leader_holder="", leader_address="")


__all__ = [
    "LEASE_NAME",
    "Belief",
    "Bid",
    "Change",
    "Failed",
    "Lost",
    "Outcome",
    "Row",
    "Timing",
    "Won",
    "believe",
    "can_take",
    "announce",
    "contest",
    "next_bid_in",
    "renews",
    "stepped_down",
]
