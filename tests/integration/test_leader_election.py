"""The scheduler leader election on a real PostgreSQL (controller/leader/election.py).

- replicas bidding at the same instant: exactly one wins, and each new term has epoch + 1
  (on SQLite too);
- replicas running, the leader replaced again and again: never two leaders, epochs grow;
- the leader process killed -9: another replica leads within 10 s;
- two controllers on one database: the retention sweep and job upkeep run on one only, and
  move to the other when it stops; the follower's scheduler hands out no leases.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from controller.assembly import Controller, Parts, build_controller
from controller.catalog import make_engine
from controller.clock import SystemClock
from controller.jobs import JobRequest, JobStore
from controller.leader import NotLeaderError
from controller.leader.election import Election, election_engine
from controller.leader.gate import LeaderOnly
from controller.leader.lease import Lost, Timing, Won
from controller.runtime import PeriodicTask
from tests.fixtures.postgres import PgServer
from tests.integration.controller_proc import make_config, prepare_data_dir
from tests.integration.test_agent_control import inventory
from tests.integration.test_agent_control_support import FAST
from tests.support import ManagedProcess, wait_until

pytestmark = pytest.mark.postgres

S = 1_000_000
QUICK = Timing(lease_s=1.5, renew_s=0.3, margin_s=0.4, retry_s=0.2)


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def engine(pg_db: str) -> Iterator[Engine]:
    shared = make_engine(pg_db)
    eng = election_engine(pg_db, shared)
    yield eng
    eng.dispose()
    shared.dispose()


@pytest.fixture
def any_engine(catalog_url: str) -> Iterator[Engine]:
    """The election's engine on SQLite and on PostgreSQL (the catalog's schema migrated)."""
    shared = make_engine(catalog_url)
    eng = election_engine(catalog_url, shared)
    yield eng
    if eng is not shared:
        eng.dispose()
    shared.dispose()


def test_simultaneous_bids_have_exactly_one_winner_and_epochs_count_up(
    any_engine: Engine,
) -> None:
    engine = any_engine
    clock = SystemClock()
    replicas = [Election(engine, f"r{i}", f"10.0.0.{i}:7443", clock, QUICK) for i in range(6)]
    replicas[0].start()  # creates and seeds the row, wins epoch 1
    replicas[0].stop()  # lets it go: the next round starts on an expired row
    for round_ in range(2, 12):
        barrier = threading.Barrier(len(replicas))
        outcomes: list[object] = [None] * len(replicas)

        def bid(i: int, barrier: threading.Barrier, outcomes: list[object]) -> None:
            barrier.wait()
            outcomes[i] = replicas[i].bid()

        threads = [
            threading.Thread(target=bid, args=(i, barrier, outcomes)) for i in range(len(replicas))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        won = [i for i, o in enumerate(outcomes) if isinstance(o, Won)]
        assert len(won) == 1, outcomes
        assert all(isinstance(o, Lost) for i, o in enumerate(outcomes) if i != won[0]), outcomes
        winner = replicas[won[0]]
        assert winner.epoch() == round_ and winner.is_leader()
        assert [r.is_leader() for r in replicas].count(True) == 1
        for r in replicas:
            if r is not winner:
                assert r.leader_address() == f"10.0.0.{won[0]}:7443"
        with engine.begin() as conn:  # expire it by hand (as if the winner died long ago)
            conn.execute(text("UPDATE leader_lease SET expires_at_us = 0"))
        # The winner itself must not count on the expired row for its next renewal:
        assert isinstance(winner.bid(), Won) and winner.epoch() == round_ + 1
        with engine.begin() as conn:
            conn.execute(text("UPDATE leader_lease SET expires_at_us = 0, epoch = :e"),
                         {"e": round_})  # fmt: skip
        # As if it had died long ago: a new process of that replica takes part next round.
        replicas[won[0]] = Election(
            engine, winner.replica_id, winner.leader_address(), clock, QUICK
        )


def test_running_replicas_never_lead_at_once_while_the_leader_keeps_changing(
    engine: Engine,
) -> None:
    """The leader alternately stops cleanly (lets the lease go) and goes silent (stops
    renewing, as if hung or cut off: it must step down before anyone else takes over)."""
    clock = SystemClock()
    terms: list[tuple[str, int]] = []

    def replica(i: int) -> Election:
        r = Election(engine, f"r{i}", f"10.0.0.{i}:7443", clock, QUICK)
        r.subscribe(lambda c: terms.append((r.replica_id, c.epoch)) if c.leading else None)
        return r

    replicas = [replica(i) for i in range(3)]
    for r in replicas:
        r.start()
    overlaps: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            leading = [(r.replica_id, r.epoch()) for r in list(replicas) if r.is_leader()]
            if len(leading) > 1:
                overlaps.append(repr(leading))
            time.sleep(0.001)

    def someone_else(old: Election) -> Callable[[], bool]:
        return lambda: any(r.is_leader() for r in replicas if r is not old)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in range(6):
            wait_until(lambda: any(r.is_leader() for r in replicas), 5, "a leader")
            i = next(i for i, r in enumerate(replicas) if r.is_leader())
            old = replicas[i]
            if n % 2:
                old._stop.set()  # silent: no more bids, and the lease is not let go
                assert old._thread is not None
                old._thread.join(5)
            else:
                old.stop()
            wait_until(someone_else(old), 5, "another replica to lead")
            assert not old.is_leader()
            old.stop()
            replicas[i] = replica(i)  # the same replica, restarted
            replicas[i].start()
    finally:
        done.set()
        watcher.join(5)
        for r in replicas:
            r.stop()
    assert not overlaps, overlaps[:3]
    epochs = [e for _, e in terms]
    assert len(epochs) >= 7 and epochs == sorted(set(epochs)), terms  # more on a loaded machine


def test_a_killed_leader_is_replaced_within_ten_seconds(pg_db: str, tmp_path: Path) -> None:
    shared = make_engine(pg_db)  # the schema, as a controller makes it
    holder = ManagedProcess(
        [sys.executable, "-m", "tests.integration.leader_holder", pg_db, "doomed"],
        tmp_path / "holder.log",
    )
    follower = Election(election_engine(pg_db, shared), "survivor", "10.0.0.2:7443",
                        SystemClock(), owns_engine=True)  # fmt: skip
    try:
        wait_until(lambda: "LEADING" in holder.log_text(), 20, "the subprocess to lead")
        follower.start()
        assert not follower.is_leader()
        assert follower.leader_address() == "doomed.test:7443"
        killed = time.monotonic()
        holder.kill9()
        wait_until(follower.is_leader, 10, "the survivor to lead within 10 s of kill -9")
        took = time.monotonic() - killed
        assert took < 10.0
        assert follower.epoch() == int(holder.log_text().split()[1]) + 1
        print(f"takeover after kill -9: {took:.2f} s")
    finally:
        holder.kill9()
        holder.stop()
        follower.stop()
        shared.dispose()


class Cuttable:
    """A TCP forwarder to the database that the test can cut (every connection closed, new
    ones refused) and mend: the network between one replica and PostgreSQL."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.cut_off = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            server = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def mend(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self._listener.close()


def test_a_leader_cut_off_from_the_database_steps_down_on_time_by_itself(
    pg_db: str, engine: Engine
) -> None:
    url = make_url(pg_db)
    proxy = Cuttable(url.host or "127.0.0.1", url.port or 5432)
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    clock = SystemClock()
    cut = Election(election_engine(via_proxy, engine), "cut", "10.0.0.1:7443", clock, QUICK,
                   owns_engine=True)  # fmt: skip
    other = Election(engine, "other", "10.0.0.2:7443", clock, QUICK)
    gained: list[float] = []
    other.subscribe(lambda c: gained.append(clock.monotonic()) if c.leading else None)
    try:
        cut.start()
        assert cut.is_leader() and cut.epoch() == 1
        other.start()
        proxy.cut()
        cut_at = clock.monotonic()
        wait_until(lambda: not cut.is_leader(), QUICK.lease_s, "the cut-off leader to step down")
        stepped = clock.monotonic()
        assert stepped - cut_at <= QUICK.lease_s - QUICK.margin_s + 0.1
        wait_until(other.is_leader, 5, "the other replica to take over")
        assert gained[0] >= stepped  # never two leaders, though cut never heard a thing
        assert other.epoch() == 2 and not cut.is_leader()
        assert cut.counters["failed"] >= 1 and cut.last_error
        proxy.mend()  # back on the network: it follows, naming the new leader
        wait_until(lambda: cut.leader_address() == "10.0.0.2:7443", 5, "cut to see the leader")
        assert not cut.is_leader() and other.is_leader()
    finally:
        other.stop()
        cut.stop()
        proxy.close()


def test_job_progress_of_a_deposed_leader_is_fenced_off_by_the_epoch(engine: Engine) -> None:
    clock = SystemClock()
    store = JobStore(engine)
    now = clock.now_us()
    store.create("job1", JobRequest(("cam1",), now - 600 * S, now - 60 * S, now + 3600 * S, "c1"),
                 now, [])  # fmt: skip
    leader = Election(engine, "r1", "10.0.0.1:7443", clock, QUICK)
    leader.start()  # the lease row, epoch 1
    epoch = leader.epoch()
    leader.stop()  # no renewals from here on: only this test changes the row
    assert store.save_progress("job1", now, {"bytes_done": 1}, [], [], [], epoch)
    with engine.begin() as conn:  # another replica took over (a newer term)
        conn.execute(text("UPDATE leader_lease SET epoch = epoch + 1"))
    with pytest.raises(NotLeaderError, match="epoch"):
        store.save_progress("job1", now, {"bytes_done": 2}, [], [], [], epoch)
    assert store.get("job1").bytes_done == 1  # nothing written
    assert store.save_progress("job1", now, {"bytes_done": 3}, [], [], [], epoch + 1)
    assert store.save_progress("job1", now, {"bytes_done": 4}, [], [], [])  # unfenced
    assert store.get("job1").bytes_done == 4


# -- two controllers on one database ------------------------------------------------------------


def controller(pg_db: str, data_dir: Path, name: str) -> Controller:
    prepare_data_dir(data_dir)
    config = make_config(
        data_dir,
        0,
        database_url=pg_db,
        retention={"sweep_interval_s": 0.1},
        cluster={"enabled": True, "replica_id": name, "lease_s": 3.0, "renew_s": 1.0},
    )
    return build_controller(config, SystemClock(), Parts(retention=True, scheduler=FAST))


def sweep_gate(c: Controller) -> LeaderOnly:
    task = next(p for p in c.components if isinstance(p, PeriodicTask) and "retention" in p.name)
    gate = task._job  # the task's job is the leader gate under test
    assert isinstance(gate, LeaderOnly)
    return gate


def test_leader_only_work_runs_on_one_of_two_controllers(pg_db: str, tmp_path: Path) -> None:
    a = controller(pg_db, tmp_path / "a", "replica-a")
    b = controller(pg_db, tmp_path / "b", "replica-b")
    a.start()
    b.start()
    try:
        assert a.leadership.is_leader() and not b.leadership.is_leader()
        assert b.leadership.leader_address() == a.config.advertised_address()
        time.sleep(1.0)  # ten sweep periods, five upkeep periods
        assert a.scheduler is not None and b.scheduler is not None
        assert sweep_gate(a).runs >= 3 and sweep_gate(b).runs == 0
        assert sweep_gate(b).skipped >= 3
        assert a.scheduler.counters["upkeeps"] >= 2 and b.scheduler.counters["upkeeps"] == 0
        with pytest.raises(NotLeaderError):
            b.scheduler.connect("dev1")  # a follower's scheduler hands out no leases
        assert b.scheduler.counters["replans"] == 0 and b.scheduler.connected() == frozenset()

        # The plan an operator sees on the follower is the leader's (published every 5 s).
        box = a.scheduler.connect("dev1")
        a.scheduler.report_inventory("dev1", inventory("dev1", ("s1", "cam1", 500_000)))
        wait_until(lambda: a.scheduler is not None and a.scheduler.lease("dev1") is not None, 3,
                   "a lease from the leader")  # fmt: skip

        def follower_shows_the_lease() -> bool:
            assert b.scheduler is not None
            shown = {d.device_id: d.lease_id for d in b.scheduler.snapshot().devices}
            return bool(shown.get("dev1"))  # FAST leases are re-issued every ~1.5 s

        wait_until(follower_shows_the_lease, 8, "the follower to show the leader's plan")
        link = next(d.link_id for d in b.scheduler.snapshot().devices if d.device_id == "dev1")
        assert link in {x.link_id for x in b.scheduler.delivery()}
        assert link in b.scheduler.topology.compiled.index  # the API can place it
        assert b.scheduler.local_snapshot().devices == []  # its /metrics count nothing twice
        a.scheduler.disconnect("dev1", box)

        runs_b = sweep_gate(b).runs
        a.stop(grace_s=0.5)  # a clean stop lets the lease go: b takes over within renew_s
        wait_until(b.leadership.is_leader, 3.0, "b to lead after a stopped")
        wait_until(lambda: sweep_gate(b).runs > runs_b + 2, 3.0, "b's retention sweeps")
        wait_until(lambda: b.scheduler is not None and b.scheduler.counters["upkeeps"] > 0, 3.0,
                   "b's job upkeep")  # fmt: skip
        assert b.leadership.epoch() == 2
        assert b.scheduler.snapshot().devices == []  # its own plan now, from nothing
        b.scheduler.connect("dev1").close()  # the new leader accepts agents
    finally:
        b.stop(grace_s=0.5)
        a.stop(grace_s=0.5)
