"""`Election`: this replica's bid for the city's scheduler lease, in the shared database.

A daemon thread bids every `renew_s` while leading and, while following, just after the lease
it last read expires; every bid is one conditional UPDATE of the `leader_lease` row (the SQL
below is `lease.contest` in SQL: the WHERE is `can_take`, the epoch CASE is `renews`), so the
database decides and two replicas can never both win. Expiry is compared on the database's
clock (PostgreSQL `now()`); on SQLite, which only replicas on one host can share, the
controller's clock stands in. `is_leader()` answers from memory against this replica's
monotonic clock (`lease.Belief`), so a leader whose renewals stop getting through steps down
at its deadline even while the database is unreachable.

On PostgreSQL the election has its own small connection pool with short connect, statement
and TCP timeouts: a bid never waits behind ingest for a pooled connection, and a dead
network costs a failed bid, not a stuck thread.

`stop()` lets the lease go (expiry set to the past), so a clean restart hands over within one
follower poll instead of a whole lease.

The table is the schema's (Alembic revision 0003, `controller/leader/tables.py` its model): the
controller's catalog migrates the database before the election starts; the election only
seeds its row.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import create_engine

from controller.catalog.db import WRITE_OPTION, normalize_url
from controller.clock import Clock
from controller.leader.lease import (
    LEASE_NAME,
    Belief,
    Bid,
    Change,
    Failed,
    Lost,
    Outcome,
    Row,
    Timing,
    Won,
    announce,
    believe,
    next_bid_in,
    stepped_down,
)

log = logging.getLogger("vigil.leader")

PG_NOW = "CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)"
PG_CONNECT_ARGS = {
    "connect_timeout": 2,
    "options": "-c statement_timeout=2000 -c lock_timeout=2000",
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 3000,
}

_BID = """
UPDATE leader_lease SET
    holder = :holder, incarnation = :inc, address = :address,
    epoch = CASE WHEN holder = :holder AND incarnation = :inc AND epoch = :held
                      AND expires_at_us >= {now} THEN epoch ELSE epoch + 1 END,
    expires_at_us = {now} + :lease_us,
    renewed_at_us = {now}
WHERE name = :name AND ((holder = :holder AND incarnation = :inc) OR expires_at_us < {now})
RETURNING epoch, expires_at_us, renewed_at_us
"""
_READ = (
    "SELECT holder, incarnation, address, epoch, expires_at_us, {now} AS now_us "
    "FROM leader_lease WHERE name = :name"
)
_SEED = (
    "INSERT INTO leader_lease (name, holder, incarnation, address, epoch, expires_at_us, "
    "renewed_at_us) VALUES (:name, '', '', '', 0, 0, 0) ON CONFLICT (name) DO NOTHING"
)
_RELEASE = (
    "UPDATE leader_lease SET expires_at_us = 0 "
    "WHERE name = :name AND holder = :holder AND incarnation = :inc AND epoch = :held"
)

Listener = Callable[[Change], None]


def election_engine(database_url: str, shared: Engine) -> Engine:
    """The engine bids go through: on PostgreSQL a private pool with short timeouts; on
    SQLite the controller's own engine (one writer at a time anyway)."""
    url = normalize_url(database_url)
    if make_url(url).get_backend_name() != "postgresql":
        return shared
    return create_engine(
        url, pool_size=1, max_overflow=1, pool_pre_ping=True, connect_args=PG_CONNECT_ARGS
    )


class Election:
    """One replica's candidacy; see the module docstring. Implements `Leadership`."""

    def __init__(
        self,
        engine: Engine,
        replica_id: str,
        address: str,
        clock: Clock,
        timing: Timing | None = None,
        *,
        name: str = LEASE_NAME,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._clock = clock
        self._timing = timing or Timing()
        self._name = name
        self._me = Bid(replica_id, secrets.token_hex(8), address)
        self._now = PG_NOW if engine.dialect.name == "postgresql" else ":now"
        self._belief = Belief()  # replaced whole (never mutated): readers take no lock
        self._heard = Change(False, 0)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # bids and announcements, one at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""
        self.counters = {"bids": 0, "failed": 0, "terms": 0}

    # -- Leadership ------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._belief.leading(self._clock.monotonic())

    def epoch(self) -> int:
        return self._belief.held_epoch(self._clock.monotonic())

    def leader_address(self) -> str:
        belief = self._belief
        if belief.leading(self._clock.monotonic()):
            return self._me.address
        return "" if belief.leader_holder == self._me.holder else belief.leader_address

    @property
    def replica_id(self) -> str:
        return self._me.holder

    @property
    def timing(self) -> Timing:
        return self._timing

    def subscribe(self, listener: Listener) -> None:
        """`listener(Change)` after each gain, loss or new term (from the election thread)."""
        self._listeners.append(listener)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Seed the row, bid once now (a replica alone leads at once), then keep bidding."""
        try:
            self._seed()
        except Exception as exc:  # the database may come back: bids keep trying
            log.warning("leader election: cannot prepare the lease row yet: %s", exc)
        first = self.bid()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(first,), name="leader-election", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop bidding and let the lease go, so another replica takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timing.lease_s)
        with self._lock:
            held = self._belief.held_epoch(self._clock.monotonic())
            self._belief = stepped_down(self._belief)
            if held:
                try:
                    self._release(held)
                    log.info("leadership (epoch %d) released", held)
                except Exception as exc:
                    log.warning("could not release the leadership lease (it expires): %s", exc)
            self._announce()
        if self._owns_engine:
            self._engine.dispose()

    # -- bidding ---------------------------------------------------------------------------------

    def bid(self) -> Outcome:
        """One bid now (the thread's step; public so tests can drive it)."""
        with self._lock:
            sent = self._clock.monotonic()
            held = self._belief.held_epoch(sent)
            try:
                outcome: Outcome = self._contest(held)
            except Exception as exc:
                outcome = Failed(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._record(outcome, sent, held)
            return outcome

    def _record(self, outcome: Outcome, sent: float, held: int) -> None:
        """(lock held) Believe `outcome`, log what changed, tell subscribers."""
        self.counters["bids"] += 1
        self._belief = believe(self._belief, outcome, sent, self._me, self._timing)
        if isinstance(outcome, Failed):
            self.counters["failed"] += 1
            if outcome.error != self.last_error:
                log.warning("leader election: bid failed: %s", outcome.error)
            self.last_error = outcome.error
        else:
            self.last_error = ""
        if isinstance(outcome, Won) and outcome.epoch != held:
            self.counters["terms"] += 1
            log.info("leading the city scheduler (epoch %d) as %s", outcome.epoch, self._me.holder)
        elif isinstance(outcome, Lost) and held:
            log.warning(
                "leadership (epoch %d) lost to %s (epoch %d)",
                held,
                outcome.row.holder or "nobody",
                outcome.row.epoch,
            )
        self._announce()

    def _announce(self) -> None:
        """(lock held) Tell subscribers what changed since they last heard."""
        news = announce(self._heard, self._belief, self._clock.monotonic())
        if news is None:
            return
        self._heard = news
        if not news.leading:
            log.info("not leading (replica %s)", self._me.holder)
        for listener in list(self._listeners):
            try:
                listener(news)
            except Exception:
                log.exception("leadership listener failed")

    def _loop(self, outcome: Outcome) -> None:
        while not self._stop.wait(
            next_bid_in(self._belief, outcome, self._clock.monotonic(), self._timing)
        ):
            outcome = self.bid()

    # -- SQL -------------------------------------------------------------------------------------

    def _params(self, held: int) -> dict[str, object]:
        me = self._me
        return {
            "name": self._name,
            "holder": me.holder,
            "inc": me.incarnation,
            "address": me.address,
            "held": held,
            "lease_us": self._timing.lease_us,
            "now": self._clock.now_us(),
        }

    def _write(self) -> Connection:
        return self._engine.connect().execution_options(**{WRITE_OPTION: True})

    def _contest(self, held: int) -> Outcome:
        params = self._params(held)
        with self._write() as conn, conn.begin():
            won = conn.execute(text(_BID.format(now=self._now)), params).first()
            if won is not None:
                epoch, expires_at_us, now_us = (int(v) for v in won)
                return Won(epoch, expires_at_us, now_us)
            row = conn.execute(text(_READ.format(now=self._now)), params).first()
            if row is None:
                conn.execute(text(_SEED), params)
                return Lost(Row(), params["now"])  # type: ignore[arg-type]
            holder, inc, address, epoch, expires, now_us = row
            return Lost(Row(holder, inc, address, int(epoch), int(expires)), int(now_us))

    def _seed(self) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(text(_SEED), self._params(0))

    def _release(self, held: int) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(text(_RELEASE), self._params(held))

    def __repr__(self) -> str:
        return f"Election({self._me.holder!r} at {self._me.address!r})"


__all__ = ["Election", "election_engine"]
