"""The buffer's SQLite index: typed queries, nothing else (the schema is in schema.py).

WAL mode with synchronous=FULL: a commit returns only once its WAL frame is on stable storage,
so an index row the caller was told about survives a power cut, not just a kill -9 (NORMAL
could roll back the last commits after a power loss while their files remain, and the
recovery would then delete acknowledged segments). One connection, shared by the camera
threads under the buffer's lock; every multi-statement change runs in one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from edge_agent.model import EvictionRecord, Gap, Hold, SegmentInfo, SegmentState
from edge_agent.store.chain import ChainLink
from edge_agent.store.schema import (
    HELD_COUNT,
    INSERT_SEGMENT,
    SCHEMA,
    SCHEMA_VERSION,
    SEG_END,
    SELECT_EVICTIONS,
    SELECT_GAPS,
    SELECT_SEGMENTS,
    CameraHead,
    eviction_row,
    hold_row,
    range_filter,
    segment_row,
)


class Index:
    """Typed queries over the buffer's SQLite database. Not thread-safe: the buffer locks."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # executescript() would COMMIT on its own; run the statements in our transaction.
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
        found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"index schema version {found[0]!r}, this agent reads {SCHEMA_VERSION!r}"
            )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on any exception (COMMIT's own included) rolled back."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back by itself (e.g. on SQLITE_FULL).
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    # -- segments -----------------------------------------------------------------------

    def insert_segment(self, info: SegmentInfo, seq: int, committed_us: int) -> None:
        self._db.execute(
            INSERT_SEGMENT,
            (
                info.segment_id,
                info.camera_id,
                info.start_us,
                info.duration_us,
                info.size_bytes,
                info.sha256,
                info.prev_sha256,
                info.container,
                int(info.flags),
                info.state.value,
                info.filename,
                seq,
                committed_us,
            ),
        )

    def get(self, segment_id: str) -> SegmentInfo | None:
        row = self._db.execute(
            SELECT_SEGMENTS + " WHERE segment_id = ?",
            (segment_id,),
        ).fetchone()
        return segment_row(row) if row else None

    def id_taken(self, segment_id: str) -> bool:
        """Whether the id names a buffered segment or one evicted earlier (ids are never reused:
        the controller deduplicates uploads by id)."""
        row = self._db.execute(
            "SELECT 1 FROM segments WHERE segment_id = ? "
            "UNION ALL SELECT 1 FROM evictions WHERE segment_id = ? LIMIT 1",
            (segment_id, segment_id),
        ).fetchone()
        return row is not None

    def segments(
        self,
        camera_id: str | None,
        start_us: int | None,
        end_us: int | None,
        state: SegmentState | None,
    ) -> list[SegmentInfo]:
        where, args = range_filter(camera_id, start_us, end_us, SEG_END)
        if state is not None:
            where += (" AND" if where else " WHERE") + " s.state = ?"
            args.append(state.value)
        sql = SELECT_SEGMENTS + where + " ORDER BY camera_id, start_us, seq"
        return [segment_row(r) for r in self._db.execute(sql, args)]

    def unsent(self, limit: int, camera_id: str | None) -> list[SegmentInfo]:
        where, args = "WHERE state = ?", [SegmentState.UNSENT.value]
        if camera_id is not None:
            where += " AND camera_id = ?"
            args.append(camera_id)
        sql = SELECT_SEGMENTS + " " + where + " ORDER BY start_us, camera_id, segment_id LIMIT ?"
        return [segment_row(r) for r in self._db.execute(sql, [*args, limit])]

    def by_state_oldest(self, state: SegmentState, limit: int) -> list[SegmentInfo]:
        """A prefix of one state's segments in eviction order (start, camera, id)."""
        sql = SELECT_SEGMENTS + " WHERE state = ? ORDER BY start_us, camera_id, segment_id LIMIT ?"
        return [segment_row(r) for r in self._db.execute(sql, (state.value, limit))]

    def set_uploaded(self, segment_id: str) -> None:
        self._db.execute(
            "UPDATE segments SET state = ? WHERE segment_id = ?",
            (SegmentState.UPLOADED.value, segment_id),
        )

    def used_bytes(self) -> int:
        return int(
            self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM segments").fetchone()[0]
        )

    def indexed_files(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._db.execute("SELECT filename, size_bytes FROM segments")}

    def segment_by_filename(self, filename: str) -> SegmentInfo | None:
        row = self._db.execute(
            SELECT_SEGMENTS + " WHERE filename = ?",
            (filename,),
        ).fetchone()
        return segment_row(row) if row else None

    # -- chain ----------------------------------------------------------------------------

    def camera_head(self, camera_id: str) -> CameraHead:
        row = self._db.execute(
            "SELECT head_seq, head_sha256, anchor_seq FROM cameras WHERE camera_id = ?",
            (camera_id,),
        ).fetchone()
        return CameraHead(row[0], row[1], row[2]) if row else CameraHead(0, "", 1)

    def set_camera_head(self, camera_id: str, seq: int, sha256: str) -> None:
        self._db.execute(
            "INSERT INTO cameras (camera_id, head_seq, head_sha256) VALUES (?, ?, ?) "
            "ON CONFLICT (camera_id) DO UPDATE SET head_seq = excluded.head_seq, "
            "head_sha256 = excluded.head_sha256",
            (camera_id, seq, sha256),
        )

    def set_anchor(self, camera_id: str, anchor_seq: int) -> None:
        self._db.execute(
            "UPDATE cameras SET anchor_seq = ? WHERE camera_id = ?", (anchor_seq, camera_id)
        )

    def camera_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT camera_id FROM cameras ORDER BY camera_id")]

    def chain_links(self, camera_id: str) -> list[ChainLink]:
        rows = self._db.execute(
            "SELECT seq, segment_id, sha256, prev_sha256, 0 FROM segments WHERE camera_id = ? "
            "UNION ALL SELECT seq, segment_id, sha256, prev_sha256, 1 FROM evictions "
            "WHERE camera_id = ?",
            (camera_id, camera_id),
        )
        return [ChainLink(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def seq_of(self, segment_id: str) -> int:
        return int(
            self._db.execute(
                "SELECT seq FROM segments WHERE segment_id = ?", (segment_id,)
            ).fetchone()[0]
        )

    # -- evictions ------------------------------------------------------------------------

    def evict(self, info: SegmentInfo, at_us: int, reason: str) -> None:
        """Move a segment's row to the eviction history (the caller deletes the file after
        the transaction commits). Uploaded evictions are born reported: nothing was lost."""
        seq = self.seq_of(info.segment_id)
        uploaded = info.state is SegmentState.UPLOADED
        self._db.execute(
            "INSERT INTO evictions (segment_id, camera_id, seq, start_us, end_us, size_bytes, "
            "sha256, prev_sha256, was_uploaded, at_us, reported, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.segment_id,
                info.camera_id,
                seq,
                info.start_us,
                info.end_us,
                info.size_bytes,
                info.sha256,
                info.prev_sha256,
                int(uploaded),
                at_us,
                int(uploaded),
                reason,
            ),
        )
        self._db.execute("DELETE FROM segments WHERE segment_id = ?", (info.segment_id,))

    def evictions(self, only_unreported: bool, limit: int | None) -> list[EvictionRecord]:
        where = " WHERE reported = 0" if only_unreported else ""
        tail = " LIMIT ?" if limit is not None else ""
        args = (limit,) if limit is not None else ()
        sql = SELECT_EVICTIONS + where + " ORDER BY record_id" + tail
        return [eviction_row(r) for r in self._db.execute(sql, args)]

    def eviction_reasons(self, record_ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for record_id in record_ids:
            row = self._db.execute(
                "SELECT reason FROM evictions WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row:
                out[record_id] = row[0]
        return out

    def existing_record_ids(self, record_ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for record_id in record_ids:
            if self._db.execute(
                "SELECT 1 FROM evictions WHERE record_id = ?", (record_id,)
            ).fetchone():
                found.add(record_id)
        return found

    def mark_reported(self, record_ids: Sequence[int]) -> None:
        self._db.executemany(
            "UPDATE evictions SET reported = 1 WHERE record_id = ?", [(i,) for i in record_ids]
        )

    def evicted_unsent_to_uploaded(self, segment_id: str) -> bool:
        """An upload finished after its segment was evicted: the 'loss' was no loss."""
        cur = self._db.execute(
            "UPDATE evictions SET was_uploaded = 1, reported = 1 WHERE segment_id = ?",
            (segment_id,),
        )
        return cur.rowcount > 0

    def prune_evictions(self, camera_id: str, before_us: int) -> int:
        """Delete the camera's oldest eviction records that are reported and older than
        `before_us`, up to the first link still needed; move the chain anchor past them."""
        head = self.camera_head(camera_id)
        bounds = self._db.execute(
            "SELECT MIN(seq) FROM ("
            " SELECT seq FROM segments WHERE camera_id = ?1"
            " UNION ALL SELECT seq FROM evictions WHERE camera_id = ?1"
            "   AND (reported = 0 OR at_us >= ?2))",
            (camera_id, before_us),
        ).fetchone()[0]
        cutoff = int(bounds) if bounds is not None else head.head_seq
        if cutoff <= head.anchor_seq:
            return 0
        cur = self._db.execute(
            "DELETE FROM evictions WHERE camera_id = ? AND seq < ?", (camera_id, cutoff)
        )
        self.set_anchor(camera_id, cutoff)
        return cur.rowcount

    # -- holds and gaps -------------------------------------------------------------------

    def find_hold(self, camera_id: str, start_us: int, end_us: int, case_id: str) -> Hold | None:
        row = self._db.execute(
            "SELECT hold_id, camera_id, start_us, end_us, case_id FROM holds "
            "WHERE camera_id = ? AND start_us = ? AND end_us = ? AND case_id = ?",
            (camera_id, start_us, end_us, case_id),
        ).fetchone()
        return hold_row(row) if row else None

    def insert_hold(self, hold: Hold, created_us: int) -> None:
        self._db.execute(
            "INSERT INTO holds (hold_id, camera_id, start_us, end_us, case_id, created_us) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (hold.hold_id, hold.camera_id, hold.start_us, hold.end_us, hold.case_id, created_us),
        )

    def delete_hold(self, hold_id: str) -> bool:
        return self._db.execute("DELETE FROM holds WHERE hold_id = ?", (hold_id,)).rowcount > 0

    def holds(self) -> list[Hold]:
        sql = (
            "SELECT hold_id, camera_id, start_us, end_us, case_id FROM holds "
            "ORDER BY camera_id, start_us, hold_id"
        )
        return [hold_row(r) for r in self._db.execute(sql)]

    def insert_gap(self, gap: Gap, recorded_us: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO gaps (camera_id, start_us, end_us, reason, recorded_us) "
            "VALUES (?, ?, ?, ?, ?)",
            (gap.camera_id, gap.start_us, gap.end_us, gap.reason, recorded_us),
        )

    def gaps(self, camera_id: str | None, start_us: int | None, end_us: int | None) -> list[Gap]:
        where, args = range_filter(camera_id, start_us, end_us, "s.end_us")
        sql = SELECT_GAPS + where + " ORDER BY camera_id, start_us, end_us"
        return [Gap(r[0], r[1], r[2], r[3]) for r in self._db.execute(sql, args)]

    # -- figures ----------------------------------------------------------------------------

    def totals_by_state(self) -> dict[SegmentState, tuple[int, int]]:
        out = {state: (0, 0) for state in SegmentState}
        for state, count, size in self._db.execute(
            "SELECT state, COUNT(*), COALESCE(SUM(size_bytes), 0) FROM segments GROUP BY state"
        ):
            out[SegmentState(state)] = (int(count), int(size))
        return out

    def held_segment_count(self) -> int:
        row = self._db.execute(HELD_COUNT).fetchone()
        return int(row[0])

    def oldest_unsent_start_us(self) -> int | None:
        row = self._db.execute(
            "SELECT MIN(start_us) FROM segments WHERE state = ?", (SegmentState.UNSENT.value,)
        ).fetchone()
        return None if row[0] is None else int(row[0])
