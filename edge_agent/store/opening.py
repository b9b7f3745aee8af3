"""Opening the buffer's directory: take its lock, open the index, repair after a crash.

The repair is the shell around recovery.py's pure plan. The lock (flock on root/lock) makes a
second agent on the same buffer fail at once instead of corrupting the first one's state; the
kernel drops it when the process dies, so a kill -9 never leaves it stale.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from pathlib import Path

from edge_agent.clock import Clock
from edge_agent.store.errors import StoreError
from edge_agent.store.files import FileOps
from edge_agent.store.index import Index
from edge_agent.store.recovery import plan_recovery

log = logging.getLogger(__name__)


def prepare(root: Path, files: FileOps, clock: Clock) -> tuple[int, Index]:
    """Create the directories, lock them, open the index and recover; returns (lock fd, index).
    On failure nothing stays open and a StoreError names the buffer."""
    try:
        for sub in ("tmp", "segments", "quarantine"):
            files.ensure_dir(root / sub)
        lock_fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create buffer directory {root}: {exc}") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(lock_fd)
        raise StoreError(f"buffer {root} is in use by another process") from exc
    try:
        index = Index(root / "index.sqlite3")
    except sqlite3.Error as exc:
        os.close(lock_fd)
        raise StoreError(f"cannot open buffer index {root / 'index.sqlite3'}: {exc}") from exc
    try:
        recover(root, index, files, clock)
    except (OSError, sqlite3.Error) as exc:
        index.close()
        os.close(lock_fd)
        raise StoreError(f"cannot recover buffer {root}: {exc}") from exc
    return lock_fd, index


def recover(root: Path, index: Index, files: FileOps, clock: Clock) -> None:
    """Bring index and disk back in line: temp files and unindexed segment files are deleted,
    rows without a (sound) file become eviction records with a reason, so they get reported."""
    tmp, seg_dir = root / "tmp", root / "segments"
    leftovers = [name for name, _ in files.walk_files(tmp)]
    for name in leftovers:
        files.unlink(tmp / name)
    plan = plan_recovery(index.indexed_files(), dict(files.walk_files(seg_dir)))
    for name in plan.delete_files:
        files.unlink(seg_dir / name)
    lost = [(n, "missing at open") for n in plan.missing_rows]
    lost += [(n, "damaged at open") for n in plan.damaged_rows]
    if lost:
        now = clock.now_us()
        with index.transaction():
            for name, reason in lost:
                info = index.segment_by_filename(name)
                if info is not None:
                    index.evict(info, now, reason)
        for name in plan.damaged_rows:
            files.rename(seg_dir / name, root / "quarantine" / name.replace("/", "_"))
        for name, reason in lost:
            log.error("buffer recovery: segment file %s %s; recorded as lost", name, reason)
    files.remove_empty_dirs(seg_dir)
    if leftovers or plan.delete_files:
        log.info(
            "buffer recovery: removed %d temp files and %d unindexed segment files",
            len(leftovers),
            len(plan.delete_files),
        )
