"""Each replica's announced address in the shared database (controller/leader/replicas.py):
a row of its own in `leader_lease` that the election never takes for a lease."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from controller.catalog import make_engine
from controller.clock import SystemClock
from controller.leader.election import Election
from controller.leader.replicas import ReplicaDirectory, row_name


def test_a_replica_announces_its_address_and_the_others_find_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        a = ReplicaDirectory(engine, SystemClock(), "replica-a", "10.0.0.1:7443")
        b = ReplicaDirectory(engine, SystemClock(), "replica-b", "10.0.0.2:7443")
        assert b.address_of("replica-a") == ""
        a.announce()
        b.announce()
        assert b.address_of("replica-a") == "10.0.0.1:7443"
        a.address = "10.0.0.9:7443"  # moved: the next announcement says so
        a.announce()
        assert b.address_of("replica-a") == "10.0.0.9:7443"
        assert a.address_of("nobody") == ""
        # the election bids for its own row only: replica rows are never a lease
        election = Election(engine, "replica-c", "10.0.0.3:7443", SystemClock())
        election.bid()  # seeds its row
        election.bid()
        assert election.is_leader()
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, epoch FROM leader_lease ORDER BY name")).all()
        assert [(str(n), int(e)) for n, e in rows] == [
            ("replica:replica-a", 0),
            ("replica:replica-b", 0),
            ("scheduler", 1),
        ]
    finally:
        engine.dispose()


def test_a_long_replica_id_fits_the_name_column() -> None:
    long_id = "r" * 100
    name = row_name(long_id)
    assert len(name) <= 64 and name.startswith("replica:#")
    assert name == row_name(long_id) and name != row_name("r" * 99)
    assert row_name("ctl1") == "replica:ctl1"
