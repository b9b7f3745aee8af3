"""Applying the eviction plan to the index and the disk (the shell around eviction.py).

Split in two steps because of the commit protocol: `evict_in_transaction` moves rows to the
eviction history inside the caller's SQLite transaction (so a commit and the evictions it
causes are one atomic change), and `delete_evicted_files` removes the files only after that
transaction committed. A crash between the two leaves files without rows, which the next open
deletes; it can never leave a row without its file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent.model import SegmentInfo, SegmentState
from edge_agent.store.eviction import EvictionPlan, plan_eviction
from edge_agent.store.files import FileOps
from edge_agent.store.index import Index

log = logging.getLogger(__name__)

_FIRST_PAGE = 64  # eviction candidates read per try; grows when held segments are skipped
NOTHING = EvictionPlan(evict_ids=(), freed_bytes=0, shortfall_bytes=0)


def evict_in_transaction(
    index: Index, used_bytes: int, quota_bytes: int, keep: frozenset[str], now_us: int
) -> tuple[list[SegmentInfo], EvictionPlan]:
    """Plan the evictions that bring the buffer within quota and record them in the index.

    Candidates are read as a prefix of the eviction order (uploaded oldest first, then unsent
    oldest first), larger each try, until the plan is met or the prefix is the whole buffer:
    a full buffer, the steady state, costs one small indexed query per commit.
    """
    if used_bytes <= quota_bytes:
        return [], NOTHING
    holds = index.holds()
    page = _FIRST_PAGE
    while True:
        candidates = index.by_state_oldest(SegmentState.UPLOADED, page)
        complete = len(candidates) < page
        if complete:  # only a complete uploaded list may be followed by unsent ones
            unsent = index.by_state_oldest(SegmentState.UNSENT, page)
            candidates += unsent
            complete = len(unsent) < page
        plan = plan_eviction(candidates, holds, used_bytes, quota_bytes, keep)
        if plan.shortfall_bytes == 0 or complete:
            break
        page *= 4
    chosen = set(plan.evict_ids)
    evicted = [c for c in candidates if c.segment_id in chosen]
    for info in evicted:
        index.evict(info, now_us, "quota")
    return evicted, plan


def delete_evicted_files(
    files: FileOps, segment_dir: Path, evicted: list[SegmentInfo], plan: EvictionPlan
) -> int:
    """Delete evicted files after their rows are gone; log every loss. Returns bytes freed."""
    freed = 0
    for info in evicted:
        try:
            files.unlink(segment_dir / info.filename)
        except OSError as exc:  # the row is gone; the next open deletes the orphan file
            log.warning("cannot delete evicted segment %s: %s", info.filename, exc)
        freed += info.size_bytes
        if info.state is SegmentState.UNSENT:
            log.warning(
                "buffer full: evicted unsent segment %s of camera %s [%d, %d), %d bytes",
                info.segment_id,
                info.camera_id,
                info.start_us,
                info.end_us,
                info.size_bytes,
            )
    if plan.shortfall_bytes:
        log.warning(
            "buffer over quota by %d bytes: everything evictable is held", plan.shortfall_bytes
        )
    return freed
