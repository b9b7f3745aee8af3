"""The audit log on a database: append (serialised, chain never forks), checkpoint, search.

The engine is passed in (the controller's SQLite or PostgreSQL); only the audit tables are
created here. Appending is one transaction that first bumps the head row, which takes the
row lock on PostgreSQL and the write lock on SQLite before anything is read, so two appenders,
in one process or in several controller replicas, always see each other's last hash. A failed
append raises `AuditError`: callers refuse to serve rather than serve unrecorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from controller.audit.aggregate import REQUEST_SOURCE, RefusalAggregator
from controller.audit.chain import (
    CHECKPOINT_EVERY,
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    AuditReport,
    Checkpoint,
    make_entry,
    sign_checkpoint,
    verify_log,
)
from controller.audit.models import AuditCheckpointRow, AuditEntryRow, AuditHeadRow
from controller.clock import Clock

log = logging.getLogger(__name__)

WRITE_OPTION = "vigil_write"  # the catalog engine's hint: BEGIN IMMEDIATE on SQLite
MAX_SEARCH = 1000
_BATCH = 1000

ENTRY: Table = AuditEntryRow.__table__  # type: ignore[attr-defined]
CHECKPOINT: Table = AuditCheckpointRow.__table__  # type: ignore[attr-defined]
HEAD: Table = AuditHeadRow.__table__  # type: ignore[attr-defined]


class AuditError(Exception):
    """The audit log could not be written or read; the action must not proceed."""


def ensure_head(engine: Engine) -> None:
    """Write the chain's head row (genesis) if it is missing, idempotently. The tables are
    made by the schema migrations."""
    try:
        with engine.begin() as conn:
            if conn.execute(select(HEAD.c.id).where(HEAD.c.id == 1)).first() is None:
                conn.execute(insert(HEAD).values(id=1, last_seq=0, last_hash=GENESIS_HASH))
    except IntegrityError:
        pass  # another process created the head row first
    except SQLAlchemyError as exc:
        raise AuditError(f"cannot read or write the audit chain's head: {exc}") from exc


def _entry(row: object) -> AuditEntry:
    m = row._mapping  # type: ignore[attr-defined]
    return AuditEntry(**{k: m[k] for k in AuditEntry.__dataclass_fields__})


def _checkpoint(row: object) -> Checkpoint:
    m = row._mapping  # type: ignore[attr-defined]
    return Checkpoint(**{k: m[k] for k in Checkpoint.__dataclass_fields__})


class _Declined(Exception):
    """`append_first` found the decision already recorded."""


class AuditLog:
    """Append-only, hash-chained, checkpoint-signed audit log."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        key: Ed25519PrivateKey,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be >= 1")
        self._engine = engine
        self._clock = clock
        self._key = key
        self._every = checkpoint_every
        self._refusals = RefusalAggregator()
        self._refusals_lock = threading.Lock()
        ensure_head(engine)

    def _write(self) -> Connection:
        return self._engine.connect().execution_options(**{WRITE_OPTION: True})

    def append(self, event: AuditEvent) -> AuditEntry:
        return self.append_many([event])[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Record `events` in order, in one transaction; AuditError if that fails."""
        out = self._append(events, None)
        assert out is not None  # no condition, so never declined
        return out

    def append_first(
        self, events: Sequence[AuditEvent], grant_id: str, actions: Sequence[str]
    ) -> list[AuditEntry] | None:
        """Record `events` unless an accepted entry of one of `actions` for `grant_id` is
        already in the log; None then, and nothing written. The check runs after the chain's
        head row is locked, so of two replicas deciding one footage request at the same
        instant exactly one decision is recorded (every append takes that lock)."""
        return self._append(events, (grant_id, tuple(actions)))

    def _append(
        self, events: Sequence[AuditEvent], unless: tuple[str, tuple[str, ...]] | None
    ) -> list[AuditEntry] | None:
        if not events:
            return []
        try:
            with self._write() as conn, conn.begin():
                n = len(events)
                conn.execute(
                    update(HEAD).where(HEAD.c.id == 1).values(last_seq=HEAD.c.last_seq + n)
                )
                if unless is not None and _recorded(conn, *unless):
                    raise _Declined  # rolls the head back: nothing written
                head = conn.execute(select(HEAD).where(HEAD.c.id == 1)).one()
                seq = head.last_seq - n
                prev = head.last_hash
                last_cp = head.last_checkpoint_seq
                now = self._clock.now_us()
                out: list[AuditEntry] = []
                for event in events:
                    seq += 1
                    entry = make_entry(seq, now, event, prev)
                    out.append(entry)
                    prev = entry.hash
                conn.execute(insert(ENTRY), [asdict(e) for e in out])
                due = [e for e in out if e.seq % self._every == 0]
                if due:
                    last_cp = self._insert_checkpoint(conn, due[-1], now, last_cp)
                conn.execute(
                    update(HEAD)
                    .where(HEAD.c.id == 1)
                    .values(last_hash=prev, last_checkpoint_seq=last_cp)
                )
        except _Declined:
            return None
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot append to the audit log: {exc}") from exc
        return out

    def append_unauthenticated(self, event: AuditEvent, sample: str = "") -> AuditEntry | None:
        """Record a refusal made before anyone was authenticated, aggregated per source: the
        first of its (source, action, reason) is written now, the rest are counted into one
        row written by `flush_refusals` (called by `checkpoint`, every minute). Returns the
        entry when one was written now."""
        source = REQUEST_SOURCE.get() or "local"
        with self._refusals_lock:
            first = self._refusals.record(
                source, event.action, event.reason, sample, self._clock.now_us()
            )
        if not first:
            return None
        detail = {**event.detail, "source": source}
        return self.append(replace(event, detail=detail))

    def flush_refusals(self) -> int:
        """Write the aggregated refusal counts (one row per source, action and reason)."""
        with self._refusals_lock:
            events = self._refusals.drain()
        self.append_many(events)
        return len(events)

    def _insert_checkpoint(self, conn: Connection, entry: AuditEntry, now: int, prev: int) -> int:
        cp = sign_checkpoint(entry.seq, entry.hash, now, prev, self._key)
        conn.execute(insert(CHECKPOINT).values(**asdict(cp)))
        return cp.seq

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head if entries were added since the last checkpoint (after
        writing the aggregated refusal counts, so they are covered by it)."""
        self.flush_refusals()
        try:
            with self._write() as conn, conn.begin():
                conn.execute(update(HEAD).where(HEAD.c.id == 1).values(last_seq=HEAD.c.last_seq))
                head = conn.execute(select(HEAD).where(HEAD.c.id == 1)).one()
                if head.last_seq == head.last_checkpoint_seq:
                    return None
                now = self._clock.now_us()
                cp = sign_checkpoint(
                    head.last_seq, head.last_hash, now, head.last_checkpoint_seq, self._key
                )
                conn.execute(insert(CHECKPOINT).values(**asdict(cp)))
                conn.execute(
                    update(HEAD).where(HEAD.c.id == 1).values(last_checkpoint_seq=head.last_seq)
                )
                return cp
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot checkpoint the audit log: {exc}") from exc

    def search(self, **filters: Any) -> list[AuditEntry]:
        """See `search`: entries matching every filter given, newest first."""
        return search(self._engine, **filters)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, oldest first, fetched in batches (constant memory)."""
        return iter_entries(self._engine)

    def checkpoints(self) -> list[Checkpoint]:
        return read_checkpoints(self._engine)

    def latest_checkpoint(self) -> Checkpoint | None:
        return latest_checkpoint(self._engine)

    def checkpoint_at(self, seq: int) -> Checkpoint | None:
        return latest_checkpoint(self._engine, at_seq=seq)

    def verify(self, public_raw: bytes, anchor: Checkpoint | None = None) -> AuditReport:
        return verify_log(self.entries(), self.checkpoints(), public_raw, anchor)


def _recorded(conn: Connection, grant_id: str, actions: tuple[str, ...]) -> bool:
    """Whether an accepted entry of `actions` for `grant_id` is in the log."""
    query = (
        select(ENTRY.c.seq)
        .where(
            ENTRY.c.grant_id == grant_id,
            ENTRY.c.action.in_(actions),
            ENTRY.c.outcome == "ok",
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def iter_entries(engine: Engine) -> Iterator[AuditEntry]:
    after = -1
    while True:
        query = select(ENTRY).where(ENTRY.c.seq > after).order_by(ENTRY.c.seq).limit(_BATCH)
        try:
            with engine.connect() as conn:
                rows = [_entry(r) for r in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot read the audit log: {exc}") from exc
        yield from rows
        if len(rows) < _BATCH:
            return
        after = rows[-1].seq


def read_checkpoints(engine: Engine) -> list[Checkpoint]:
    try:
        with engine.connect() as conn:
            return [
                _checkpoint(r) for r in conn.execute(select(CHECKPOINT).order_by(CHECKPOINT.c.seq))
            ]
    except SQLAlchemyError as exc:
        raise AuditError(f"cannot read the audit checkpoints: {exc}") from exc


def latest_checkpoint(engine: Engine, at_seq: int | None = None) -> Checkpoint | None:
    """The newest signed checkpoint (None before the first): what the witness publishes;
    with `at_seq`, the checkpoint at exactly that entry (None if there is none)."""
    query = select(CHECKPOINT).order_by(CHECKPOINT.c.seq.desc()).limit(1)
    if at_seq is not None:
        query = select(CHECKPOINT).where(CHECKPOINT.c.seq == at_seq)
    try:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    except SQLAlchemyError as exc:
        raise AuditError(f"cannot read the audit checkpoints: {exc}") from exc
    return None if row is None else _checkpoint(row)


def search(
    engine: Engine,
    *,
    user: str | None = None,
    camera: str | None = None,
    case: str | None = None,
    grant: str | None = None,
    action: str | None = None,
    since_us: int | None = None,
    until_us: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries matching every filter given, newest first (at most `limit`, <= 1000)."""
    if not 1 <= limit <= MAX_SEARCH:
        raise ValueError(f"limit must be 1..{MAX_SEARCH}")
    query = select(ENTRY)
    for column, value in (
        (ENTRY.c.actor_user, user),
        (ENTRY.c.camera_id, camera),
        (ENTRY.c.case_id, case),
        (ENTRY.c.grant_id, grant),
        (ENTRY.c.action, action),
    ):
        if value is not None:
            query = query.where(column == value)
    if since_us is not None:
        query = query.where(ENTRY.c.at_us >= since_us)
    if until_us is not None:
        query = query.where(ENTRY.c.at_us < until_us)
    query = query.order_by(ENTRY.c.seq.desc()).limit(limit)
    try:
        with engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]
    except SQLAlchemyError as exc:
        raise AuditError(f"cannot search the audit log: {exc}") from exc


def action_counts(
    engine: Engine, start_us: int, end_us: int, actions: Sequence[str]
) -> dict[tuple[str, str], tuple[int, int]]:
    """Successful entries of `actions` in [start_us, end_us) per (action, organisation):
    (entries, distinct grants). For the KPI report's sharing figures; {} when the log's
    tables do not exist yet (no API ever ran on this database)."""
    from sqlalchemy import func

    q = (
        select(
            ENTRY.c.action,
            ENTRY.c.actor_org,
            func.count(),
            func.count(ENTRY.c.grant_id.distinct()),
        )
        .where(
            ENTRY.c.at_us >= start_us,
            ENTRY.c.at_us < end_us,
            ENTRY.c.outcome == "ok",
            ENTRY.c.action.in_(list(actions)),
        )
        .group_by(ENTRY.c.action, ENTRY.c.actor_org)
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(q).all()
    except SQLAlchemyError:
        if not _has_table(engine):
            return {}
        raise
    return {(str(a), str(o)): (int(n), int(g)) for a, o, n, g in rows}


def _has_table(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(engine).has_table(ENTRY.name))
