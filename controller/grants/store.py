"""What the controller remembers about grants: revocations, download uses, grants seen.

Revocations carry the sequence number of the published list (the autoincrement id, so every
replica sharing the database agrees on it). Download uses are consumed along the whole chain
in one transaction (`UPDATE ... SET used = used + 1 WHERE used < limit`, atomic on SQLite and
PostgreSQL): a single-use grant is used once even when two downloads race, and a holder cannot
multiply downloads by delegating many single-use children of one limited grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, Table, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from controller.grants.codec import Chain
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import DAY_US
from controller.grants.revocation import Lineage

WRITE_OPTION = "vigil_write"
UNKNOWN_EXPIRY_US = 366 * DAY_US  # keep a revocation of a never-seen grant listed this long


class GrantRevocation(SQLModel, table=True):
    __tablename__ = "grant_revocation"

    # INTEGER on SQLite: only "INTEGER PRIMARY KEY" autoincrements there.
    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    grant_id: str = Field(max_length=32, unique=True)
    revoked_at_us: int = Field(sa_type=BigInteger)
    prune_after_us: int = Field(sa_type=BigInteger, index=True)
    by_user: str = Field(default="", max_length=256)
    reason: str = Field(default="", max_length=512)


class GrantUse(SQLModel, table=True):
    __tablename__ = "grant_use"

    grant_id: str = Field(primary_key=True, max_length=32)
    used: int = Field(default=0)
    use_limit: int


class GrantSeen(SQLModel, table=True):
    __tablename__ = "grant_seen"

    grant_id: str = Field(primary_key=True, max_length=32)
    parent_id: str = Field(default="", max_length=32)
    issuer_org: str = Field(max_length=128)
    holder_org: str = Field(max_length=128)
    holder_user: str = Field(default="", max_length=128)
    case_id: str = Field(default="", max_length=128)
    expires_us: int = Field(sa_type=BigInteger)
    first_seen_us: int = Field(sa_type=BigInteger)


REVOCATION: Table = GrantRevocation.__table__  # type: ignore[attr-defined]
USE: Table = GrantUse.__table__  # type: ignore[attr-defined]
SEEN: Table = GrantSeen.__table__  # type: ignore[attr-defined]


class GrantStoreError(Exception):
    """The grant tables could not be read or written."""


@dataclass(frozen=True, slots=True)
class Revocations:
    sequence: int
    revoked: frozenset[str]


class GrantStore:
    """The grant tables (made by the schema migrations)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def _write(self) -> Connection:
        return self._engine.connect().execution_options(**{WRITE_OPTION: True})

    def revoke(
        self, grant_id: str, now_us: int, by_user: str, reason: str, expires_us: int | None
    ) -> tuple[int, bool]:
        """Revoke `grant_id`; returns (its list sequence, whether it is newly revoked)."""
        prune = (now_us + UNKNOWN_EXPIRY_US) if expires_us is None else expires_us
        try:
            with self._write() as conn, conn.begin():
                existing = conn.execute(
                    select(REVOCATION.c.seq).where(REVOCATION.c.grant_id == grant_id)
                ).scalar()
                if existing is not None:
                    return int(existing), False
                result = conn.execute(
                    insert(REVOCATION).values(
                        grant_id=grant_id,
                        revoked_at_us=now_us,
                        prune_after_us=prune,
                        by_user=by_user[:256],
                        reason=reason[:512],
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                return int(key[0]), True
        except IntegrityError:
            return self.revocations(now_us).sequence, False  # revoked concurrently
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot record the revocation: {exc}") from exc

    def revocations(self, now_us: int) -> Revocations:
        """Revoked ids still worth listing, and the current sequence."""
        try:
            with self._engine.connect() as conn:
                seq = conn.execute(select(func.max(REVOCATION.c.seq))).scalar() or 0
                ids = conn.execute(
                    select(REVOCATION.c.grant_id).where(REVOCATION.c.prune_after_us > now_us)
                ).scalars()
                return Revocations(int(seq), frozenset(ids))
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot read revocations: {exc}") from exc

    def consume_download(self, chain: Chain) -> None:
        """Use one download of every limited grant in the chain, or none:
        GrantRefused(USES_EXHAUSTED) naming the grant that is used up."""
        limited = [link.body for link in chain.links if link.body.download_limit > 0]
        if not limited:
            return
        try:
            with self._write() as conn, conn.begin():
                for body in limited:
                    _ensure_use_row(conn, body.grant_id, body.download_limit)
                    done = conn.execute(
                        update(USE)
                        .where(USE.c.grant_id == body.grant_id)
                        .where(USE.c.used < USE.c.use_limit)
                        .values(used=USE.c.used + 1)
                    )
                    if done.rowcount != 1:
                        raise GrantRefused(
                            Reason.USES_EXHAUSTED,
                            f"grant {body.grant_id} allows {body.download_limit} download(s), "
                            "all used",
                        )
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot record the download: {exc}") from exc

    def uses(self, grant_id: str) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(USE.c.used).where(USE.c.grant_id == grant_id)).scalar() or 0
            )

    def record_seen(self, chain: Chain, now_us: int) -> list[str]:
        """Remember the chain's grants; returns the ids never seen before (oldest first)."""
        ids = list(chain.grant_ids)
        try:
            with self._engine.connect() as conn:
                known = set(
                    conn.execute(select(SEEN.c.grant_id).where(SEEN.c.grant_id.in_(ids))).scalars()
                )
            new = [link.body for link in chain.links if link.body.grant_id not in known]
            fresh: list[str] = []
            for body in new:
                try:
                    with self._write() as conn, conn.begin():
                        conn.execute(
                            insert(SEEN).values(
                                grant_id=body.grant_id,
                                parent_id=body.parent_id,
                                issuer_org=body.issuer_org,
                                holder_org=body.holder_org,
                                holder_user=body.holder_user,
                                case_id=body.case_id,
                                expires_us=body.expires_us,
                                first_seen_us=now_us,
                            )
                        )
                    fresh.append(body.grant_id)
                except IntegrityError:
                    pass  # seen concurrently
            return fresh
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot record grants: {exc}") from exc

    def expiry_of(self, grant_id: str) -> int | None:
        with self._engine.connect() as conn:
            value = conn.execute(
                select(SEEN.c.expires_us).where(SEEN.c.grant_id == grant_id)
            ).scalar()
        return None if value is None else int(value)

    def lineage(self, grant_id: str, max_depth: int = 16) -> Lineage | None:
        """The grant and its ancestors as registered here (None: never seen)."""
        links: list[tuple[str, str]] = []
        current = grant_id
        try:
            with self._engine.connect() as conn:
                while current and len(links) < max_depth:
                    row = conn.execute(
                        select(SEEN.c.parent_id, SEEN.c.issuer_org, SEEN.c.holder_org).where(
                            SEEN.c.grant_id == current
                        )
                    ).first()
                    if row is None:
                        break
                    links.append((str(row.issuer_org), str(row.holder_org)))
                    current = str(row.parent_id)
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot read grants: {exc}") from exc
        return Lineage(grant_id, tuple(links)) if links else None

    def listed_count(self, now_us: int) -> int:
        """Live revocations (those the published list carries)."""
        try:
            with self._engine.connect() as conn:
                return int(
                    conn.execute(
                        select(func.count())
                        .select_from(REVOCATION)
                        .where(REVOCATION.c.prune_after_us > now_us)
                    ).scalar_one()
                )
        except SQLAlchemyError as exc:
            raise GrantStoreError(f"cannot count revocations: {exc}") from exc

    def children_of(self, grant_ids: Sequence[str]) -> list[str]:
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    select(SEEN.c.grant_id).where(SEEN.c.parent_id.in_(grant_ids))
                ).scalars()
            )


def _ensure_use_row(conn: Connection, grant_id: str, limit: int) -> None:
    """Insert the use counter of `grant_id` unless it exists (no error, no race)."""
    dialect = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        dialect(USE)
        .values(grant_id=grant_id, used=0, use_limit=limit)
        .on_conflict_do_nothing(index_elements=["grant_id"])
    )
