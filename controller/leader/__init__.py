"""Which replica leads the city: the contract every leader-only part codes against.

Several controller replicas share one PostgreSQL, one object store and one broker. Ingest and
the HTTP API run on every replica; the scheduler's plan and lease streams, job upkeep, the
retention sweep and alert raising run on exactly one, the leader. Parts never ask the database
themselves: they are given a `Leadership` and ask it.

- `SoleLeader`: a controller that is alone (SQLite, the demo, most tests) always leads.
- The elected implementation (a lease row with a fencing epoch in the shared database) lives in
  `controller.leader.election` (`Election`; its decisions, pure, in `controller.leader.lease`).
  It also offers `subscribe(listener)` for parts that prefer hearing about a change to
  asking; `is_leader()` stays the authority (a lease can end without any event).
- A leader-only part asked to act on a follower raises `NotLeaderError`.

Followers refuse AgentControl calls with FAILED_PRECONDITION and trailing metadata
`LEADER_METADATA_KEY` = the leader's advertised gRPC address (`host:port`), so agents switch
their control channel to it (only if it is one of their configured controller addresses).
"""

from __future__ import annotations

from typing import Protocol

LEADER_METADATA_KEY = "vigil-leader"


class Leadership(Protocol):
    """What a leader-only part asks, cheaply and often (no I/O: answers from memory)."""

    def is_leader(self) -> bool:
        """True while this replica holds an unexpired leadership lease."""
        ...

    def epoch(self) -> int:
        """The fencing token of the current leadership (grows at every takeover); 0 if none."""
        ...

    def leader_address(self) -> str:
        """The advertised gRPC address of the current leader ('' if unknown)."""
        ...


class NotLeaderError(Exception):
    """A leader-only part was asked to act on a follower (or just after it lost the lease):
    answer as for a follower (gRPC: FAILED_PRECONDITION with `LEADER_METADATA_KEY`)."""


class SoleLeader:
    """A controller that runs alone: always the leader, epoch 1."""

    def __init__(self, address: str = "") -> None:
        self._address = address

    def is_leader(self) -> bool:
        return True

    def epoch(self) -> int:
        return 1

    def leader_address(self) -> str:
        return self._address


__all__ = ["LEADER_METADATA_KEY", "Leadership", "NotLeaderError", "SoleLeader"]
