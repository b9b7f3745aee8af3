"""The buffer's eviction records and hash-chain check: what was lost, and whether what is
kept is intact. A base of `SegmentBuffer` (edge_agent/store/buffer.py), which holds the lock,
the index and the files these use."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from edge_agent.model import EvictionRecord, SegmentInfo
from edge_agent.store import validate
from edge_agent.store.chain import verify_links
from edge_agent.store.errors import StoreError
from edge_agent.store.files import FileOps
from edge_agent.store.index import Index

MAX_LIMIT = 100_000


class LossRecords:
    """Eviction history and chain checks; `SegmentBuffer` provides the index, the files, the
    lock (`_locked`) and `path_of`."""

    _index: Index
    _files: FileOps

    def _locked(self, what: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def path_of(self, info: SegmentInfo) -> Path:
        raise NotImplementedError

    # -- evictions ------------------------------------------------------------------------------

    def evictions(
        self, only_unreported: bool = True, limit: int | None = None
    ) -> list[EvictionRecord]:
        """Eviction history, oldest first. Uploaded evictions are born reported (nothing was
        lost), so the unreported ones are the losses still to report."""
        count = None if limit is None else validate.positive("limit", limit, MAX_LIMIT)
        with self._locked("evictions query"):
            return self._index.evictions(only_unreported, count)

    def mark_evictions_reported(self, record_ids: Sequence[int]) -> None:
        """Idempotent; any unknown record id refuses the whole call."""
        ids = list(record_ids)
        if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
            raise StoreError(f"eviction record ids must be integers, got {ids!r}")
        with self._locked("eviction reporting"):
            unknown = set(ids) - self._index.existing_record_ids(ids)
            if unknown:
                raise StoreError(f"unknown eviction record ids {sorted(unknown)}")
            with self._index.transaction():
                self._index.mark_reported(ids)

    def eviction_reasons(self, record_ids: Sequence[int]) -> dict[int, str]:
        """Why each record was made: 'quota', 'missing at open' or 'damaged at open'."""
        with self._locked("eviction reasons"):
            return self._index.eviction_reasons(list(record_ids))

    def prune_evictions(self, before_us: int) -> int:
        """Forget reported eviction records older than `before_us` that no chain check still
        needs (each camera's chain is then verified from its first remaining link)."""
        cutoff = validate.micros("before_us", before_us)
        with self._locked("eviction pruning"), self._index.transaction():
            return sum(self._index.prune_evictions(c, cutoff) for c in self._index.camera_ids())

    def verify_chain(self, camera_id: str, *, check_files: bool = False) -> list[str]:
        """Problems in the camera's hash chain ([] when intact). With `check_files`, also
        re-hash every buffered file of the camera against its index row."""
        cam = validate.camera(camera_id)
        with self._locked(f"chain check of camera {cam}"):
            head = self._index.camera_head(cam)
            problems = verify_links(
                cam, self._index.chain_links(cam), head.anchor_seq, head.head_seq, head.head_sha256
            )
            buffered = self._index.segments(cam, None, None, None) if check_files else []
        for info in buffered:
            path = self.path_of(info)
            try:
                actual = self._files.sha256(path)
            except OSError as exc:
                problems.append(f"camera {cam}: {info.segment_id}: cannot read {path}: {exc}")
                continue
            if actual != info.sha256:
                problems.append(f"camera {cam}: {info.segment_id}: file hash differs from index")
        return problems
