"""The buffer's filesystem operations, behind one small seam.

`FileOps` does the real thing (fsync, rename, directory fsync). It is a class so a test can
subclass it and make one chosen step fail with ENOSPC, proving that a full disk at any step of
a commit leaves the buffer as it was; the disk-full test on a real tiny tmpfs covers the rest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1024 * 1024


class FileOps:
    """Real filesystem operations used by `SegmentBuffer`."""

    def hash_and_sync(self, path: Path) -> tuple[int, str]:
        """Read the file once for its size and SHA-256, then fsync it to stable storage.

        Reading hits the page cache the writer just filled, so this is the one pass over the
        data a commit costs. fsync works on a read-only descriptor on Linux: it flushes the
        inode, whoever dirtied it.
        """
        digest = hashlib.sha256()
        size = 0
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        return size, digest.hexdigest()

    def sync_known(self, path: Path, digest: tuple[int, str]) -> tuple[int, str]:
        """fsync a file whose (size, SHA-256) its writer computed while writing it; if its
        size on disk is not that size, it is not what was hashed: read and hash it instead."""
        size, sha = digest
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if os.fstat(fd).st_size != size:
                return self.hash_and_sync(path)
            os.fsync(fd)
        finally:
            os.close(fd)
        return size, sha

    def sha256(self, path: Path) -> str:
        """The SHA-256 of a file (for verification; no fsync)."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def ensure_dir(self, path: Path) -> None:
        """Create `path` (and parents) durably: each new directory's parent is fsynced."""
        if path.is_dir():
            return
        self.ensure_dir(path.parent)
        try:
            path.mkdir()
        except FileExistsError:
            return
        self.fsync_dir(path.parent)

    def rename(self, src: Path, dst: Path) -> None:
        os.rename(src, dst)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def walk_files(self, root: Path) -> Iterator[tuple[str, int]]:
        """(path relative to root, size) of every regular file below root."""
        if not root.is_dir():
            return
        stack = [root]
        while stack:
            current = stack.pop()
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        rel = Path(entry.path).relative_to(root).as_posix()
                        size = entry.stat(follow_symlinks=False).st_size
                        yield rel, size

    def remove_empty_dirs(self, root: Path) -> None:
        """Remove empty directories below root (left behind by eviction), keeping root."""
        if not root.is_dir():
            return
        for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
            if Path(dirpath) == root:
                continue
            try:
                os.rmdir(dirpath)
            except OSError:
                continue  # not empty
