"""The multipart ledger: which S3 multipart upload holds which segment, part by part.

One row per segment being streamed into a multipart upload (stream.py), in the catalog's
database, so every replica sees it: the upload id, the object key, the header the bytes
belong to, and for each stored part its size, its SHA-256 (what the store verified it
against, needed again to complete), its ETag and the segment's running SHA-256 state after
it (sha.py). That is everything a replica needs to resume an upload another one started,
with ListParts in the store as the check that the parts are really there.

`state` is `receiving` while parts arrive and `verified` once every byte is stored and the
whole segment hashed to its header's SHA-256. A verified row is the durable commit queue:
its bytes are safe at the city (in the store's parts) and any replica completes the upload
and writes the catalog row as soon as the store answers (service.drain_verified). The
retention sweep aborts `receiving` rows untouched past a bound, never `verified` ones.

Writes are optimistic (`nparts` must still be what the writer read), so two streams of one
segment on two replicas cannot interleave their part lists: the loser gets ABORTED and asks
again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from controller.ingest.rules import Header

LEDGER_METADATA = MetaData()
RECEIVING = "receiving"
VERIFIED = "verified"

ingest_multipart = Table(
    "ingest_multipart",
    LEDGER_METADATA,
    Column("segment_id", String(128), primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("camera_id", String(64), nullable=False),
    Column("object_key", String(1024), nullable=False),
    Column("upload_id", String(1024), nullable=False),
    Column("header", Text, nullable=False),
    Column("part_size", BigInteger, nullable=False),
    Column("nparts", Integer, nullable=False),
    Column("parts", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_ingest_multipart_device", "device_id"),
    Index("ix_ingest_multipart_state_updated", "state", "updated_us"),
)


class LedgerError(Exception):
    """The database could not be read or written (retry later)."""


@dataclass(frozen=True, slots=True)
class StoredPart:
    number: int
    size: int
    sha256_b64: str  # the part's SHA-256 as the store verified it
    etag: str
    sha_state: str  # the segment's running SHA-256 after this part (sha.py)


@dataclass(frozen=True, slots=True)
class UploadRow:
    segment_id: str
    device_id: str
    camera_id: str
    object_key: str
    upload_id: str
    header: Header
    part_size: int
    parts: tuple[StoredPart, ...]
    state: str
    created_us: int
    updated_us: int

    @property
    def stored_bytes(self) -> int:
        return sum(p.size for p in self.parts)


def _row(m: RowMapping) -> UploadRow:
    header = Header(**json.loads(m["header"]))
    parts = tuple(StoredPart(*p) for p in json.loads(m["parts"]))
    return UploadRow(
        m["segment_id"],
        m["device_id"],
        m["camera_id"],
        m["object_key"],
        m["upload_id"],
        header,
        int(m["part_size"]),
        parts,
        m["state"],
        int(m["created_us"]),
        int(m["updated_us"]),
    )


def _parts_json(parts: Sequence[StoredPart]) -> str:
    return json.dumps([list(asdict(p).values()) for p in parts])


class Ledger:
    """The `ingest_multipart` table on the catalog's engine (thread-safe). The table is made
    by the catalog's migrations (revision 0009), never here: `make_engine` migrates."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _read(self, query: Any) -> list[UploadRow]:
        try:
            with self._engine.connect() as conn:
                return [_row(m) for m in conn.execute(query).mappings()]
        except SQLAlchemyError as exc:
            raise LedgerError(f"multipart ledger: {exc}") from exc

    def _write(self, statement: Any) -> int:
        try:
            with self._engine.begin() as conn:
                return int(conn.execute(statement).rowcount or 0)
        except SQLAlchemyError as exc:
            raise LedgerError(f"multipart ledger: {exc}") from exc

    def get(self, segment_id: str) -> UploadRow | None:
        t = ingest_multipart.c
        rows = self._read(select(ingest_multipart).where(t.segment_id == segment_id))
        return rows[0] if rows else None

    def insert(self, row: UploadRow) -> bool:
        """Record a new upload; False when the segment already has one (a race)."""
        values = asdict(row) | {
            "header": json.dumps(asdict(row.header)),
            "parts": _parts_json(row.parts),
            "nparts": len(row.parts),
        }
        try:
            self._write(insert(ingest_multipart).values(**values))
        except LedgerError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def _match(self, row: UploadRow) -> Any:
        t = ingest_multipart.c
        return and_(
            t.segment_id == row.segment_id,
            t.upload_id == row.upload_id,
            t.nparts == len(row.parts),
            t.state == row.state,
        )

    def set_parts(self, row: UploadRow, parts: Sequence[StoredPart], now_us: int) -> bool:
        """Replace the part list of `row` (as read); False if someone changed it since."""
        stmt = (
            update(ingest_multipart)
            .where(self._match(row))
            .values(parts=_parts_json(parts), nparts=len(parts), updated_us=now_us)
        )
        return self._write(stmt) == 1

    def mark_verified(self, row: UploadRow, now_us: int) -> bool:
        """Every byte stored and hash-checked: the row joins the commit queue."""
        stmt = (
            update(ingest_multipart)
            .where(self._match(row))
            .values(state=VERIFIED, updated_us=now_us)
        )
        return self._write(stmt) == 1

    def delete(self, segment_id: str, upload_id: str) -> None:
        t = ingest_multipart.c
        self._write(
            delete(ingest_multipart).where(
                and_(t.segment_id == segment_id, t.upload_id == upload_id)
            )
        )

    def device_rows(self, device_id: str) -> list[UploadRow]:
        return self._read(select(ingest_multipart).where(ingest_multipart.c.device_id == device_id))

    def verified(self, limit: int = 100) -> list[UploadRow]:
        """The commit queue, oldest first."""
        t = ingest_multipart.c
        return self._read(
            select(ingest_multipart).where(t.state == VERIFIED).order_by(t.updated_us).limit(limit)
        )

    def stale(self, before_us: int, limit: int = 1000) -> list[UploadRow]:
        """Receiving uploads untouched since `before_us` (abandoned), oldest first."""
        t = ingest_multipart.c
        return self._read(
            select(ingest_multipart)
            .where(and_(t.state == RECEIVING, t.updated_us < before_us))
            .order_by(t.updated_us)
            .limit(limit)
        )

    def known_upload_ids(self, upload_ids: Sequence[str]) -> set[str]:
        if not upload_ids:
            return set()
        t = ingest_multipart.c
        try:
            with self._engine.connect() as conn:
                found = conn.execute(select(t.upload_id).where(t.upload_id.in_(list(upload_ids))))
                return {str(r[0]) for r in found}
        except SQLAlchemyError as exc:
            raise LedgerError(f"multipart ledger: {exc}") from exc
