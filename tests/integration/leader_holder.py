"""A replica that only runs the leader election, for kill -9 tests (no tests in here).

    python -m tests.integration.leader_holder DATABASE_URL REPLICA_ID

Prints `LEADING <epoch>` / `FOLLOWING` on every change, flushed, until killed.
"""

from __future__ import annotations

import sys
import threading

from sqlalchemy import create_engine

from controller.catalog.db import normalize_url
from controller.clock import SystemClock
from controller.leader.election import Election
from controller.leader.lease import Change


def main(url: str, replica_id: str) -> None:
    engine = create_engine(normalize_url(url))
    election = Election(engine, replica_id, f"{replica_id}.test:7443", SystemClock())

    def show(change: Change) -> None:
        print(f"LEADING {change.epoch}" if change.leading else "FOLLOWING", flush=True)

    election.subscribe(show)
    election.start()
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
