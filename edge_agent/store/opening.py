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


INDEX_NAME = "index.sqlite3"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_mode(mode: int, is_dir: bool) -> int | None:
    """The mode to set when `mode` lets group or others in (None: already private). Pure."""
    perms = mode & 0o777
    return None if perms & 0o077 == 0 else perms & (PRIVATE_DIR if is_dir else PRIVATE_FILE)


def _tighten(path: Path) -> tuple[int, int] | None:
    """(old, new) mode when `path` was tightened, None when it was private or absent."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    new = private_mode(st.st_mode, path.is_dir())
    if new is None or path.is_symlink():
        return None
    path.chmod(new)
    return st.st_mode & 0o777, new


def secure_buffer(root: Path) -> None:
    """The buffer holds camera footage: its directories 0700, its index, lock and segment
    files 0600. Checked at every open; a looser mode is tightened with a warning (an
    OSError if it cannot be, which refuses to open the buffer)."""
    paths = [root] + [root / sub for sub in ("tmp", "segments", "quarantine")]
    paths += [root / "lock"] + [root / f"{INDEX_NAME}{s}" for s in ("", "-wal", "-shm")]
    for path in paths:
        changed = _tighten(path)
        if changed is not None:
            log.warning("buffer: %s was mode %04o (readable by others): now %04o", path, *changed)
    loose = sum(1 for p in (root / "segments").rglob("*") if _tighten(p) is not None)
    if loose:
        log.warning("buffer: %d segment files and dirs were readable by others: now private", loose)


def prepare(root: Path, files: FileOps, clock: Clock) -> tuple[int, Index]:
    """Create the directories, lock them, open the index and recover; returns (lock fd, index).
    On failure nothing stays open and a StoreError names the buffer."""
    try:
        for sub in ("tmp", "segments", "quarantine"):
            files.ensure_dir(root / sub)
        lock_fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        if not (root / INDEX_NAME).exists():  # SQLite gives -wal/-shm the index's own mode
            os.close(os.open(root / INDEX_NAME, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
        secure_buffer(root)
    except OSError as exc:
        raise StoreError(f"cannot create buffer directory {root}: {exc}") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(lock_fd)
        raise StoreError(f"buffer {root} is in use by another process") from exc
    try:
        index = Index(root / INDEX_NAME)
    except sqlite3.Error as exc:
        os.close(lock_fd)
        raise StoreError(f"cannot open buffer index {root / INDEX_NAME}: {exc}") from exc
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
