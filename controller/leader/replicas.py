"""Where each replica is: its advertised gRPC address, announced in the shared database.

The live relay (controller/live/relay.py) must reach the replica a GB/T 28181 device
registered to, and `gb_device.replica` names only the replica's id. The election's
`leader_lease` table already carries (holder, address) per row: each replica keeps one row
of its own there, `name = 'replica:<id>'` (epoch and expiry 0: never a lease, and the
election only ever reads its own row by name), so no schema change is needed. The row is
written at start and refreshed every `ANNOUNCE_S` (`renewed_at_us` tells an operator when a
replica was last up; a replica that stopped keeps its row: relaying to it fails, which is
what its viewers are told).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.engine import Engine

from controller.catalog.db import WRITE_OPTION
from controller.clock import Clock

PREFIX = "replica:"
NAME_MAX = 64  # leader_lease.name
ANNOUNCE_S = 60.0

_UPDATE = (
    "UPDATE leader_lease SET holder = :holder, address = :address, renewed_at_us = :now "
    "WHERE name = :name"
)
_INSERT = (
    "INSERT INTO leader_lease (name, holder, incarnation, address, epoch, expires_at_us, "
    "renewed_at_us) VALUES (:name, :holder, '', :address, 0, 0, :now)"
)
_ADDRESS = "SELECT address FROM leader_lease WHERE name = :name AND holder = :holder"


def row_name(replica_id: str) -> str:
    """The row of a replica: its id when it fits the column, else a digest of it."""
    name = PREFIX + replica_id
    if len(name) <= NAME_MAX:
        return name
    return PREFIX + "#" + hashlib.sha256(replica_id.encode()).hexdigest()[:40]


class ReplicaDirectory:
    """This replica's announcement, and the look-up of others' (blocking: SQL)."""

    def __init__(self, engine: Engine, clock: Clock, replica_id: str, address: str) -> None:
        self._engine = engine
        self._clock = clock
        self.replica_id = replica_id
        self.address = address

    def announce(self) -> None:
        params = {
            "name": row_name(self.replica_id),
            "holder": self.replica_id,
            "address": self.address,
            "now": self._clock.now_us(),
        }
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                if conn.execute(text(_UPDATE), params).rowcount == 0:
                    conn.execute(text(_INSERT), params)

    def address_of(self, replica_id: str) -> str:
        """The advertised address replica `replica_id` announced ("" if none)."""
        params = {"name": row_name(replica_id), "holder": replica_id}
        with self._engine.connect() as conn:
            row = conn.execute(text(_ADDRESS), params).first()
        return str(row[0]) if row is not None else ""


__all__ = ["ReplicaDirectory", "row_name"]
