"""Staged partial uploads on local disk: what makes resume survive broken links and restarts.

Layout: `<root>/<device_id>/<segment_id>.part` (the bytes received so far) and `.json` (the
header they belong to). Per-device directories keep one device's staging from touching
another's even when segment ids collide. Chunks go to the part file as they arrive (with
O_DIRECT, direct.py, only the last partial block waits in memory), so after a controller
crash (even kill -9) the file holds what was received but for at most that block, and the
file size *is* the resume offset: it never covers a byte that was not received. Power loss can
leave a torn tail; that is caught by the SHA-256 check at the end, which discards the staging
(the agent then re-sends from 0). The running hash state is saved beside the part file
(`<segment_id>.sha`, hash_state.py) whenever the file holds exactly the bytes received, so a
resumed stream continues the hash instead of re-reading the kept prefix from disk (within
one boot; after a reboot the prefix is re-hashed as before). Nothing is fsynced here: a
verified part file is handed to the object store, which makes it durable once, at commit
(for the local store by linking this very inode into place, so no byte is copied).

A crash between that link and the catalog row leaves the part file sharing its inode with
the stored object. The agent's retry then resumes from the staged size and nothing is
written; a resume from a *lower* offset would truncate the object through the shared inode,
so such a part file is first copied to a private one (`_unshare`), a rare crash-path cost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from controller.ingest import hash_state
from controller.ingest.direct import BLOCK, BufferPool, DirectAppender, open_direct
from controller.ingest.rules import Header, OffsetPlan, StagingAction
from controller.ingest.sha import ResumableSha256

_READ = 4 * 1024 * 1024


class StagedUpload:
    """One open staging file: appends chunks and hashes them as they arrive.

    With a buffer pool the bytes go through O_DIRECT (direct.py), else plain `write()`s.
    `close()` must succeed before the file is complete (it writes the last partial block).
    `rehashed`: how many bytes of the kept prefix had to be read back to resume the hash.
    """

    def __init__(self, part: Path, start: int, pool: BufferPool | None = None) -> None:
        self.path = part
        self._direct: DirectAppender | None = None
        self._fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o600)
        self._state_fd = -1
        try:
            os.ftruncate(self._fd, start)
            self._state_fd = os.open(state_path(part), os.O_RDWR | os.O_CREAT, 0o600)
            self._hash = self._saved_hash(start)
            self.rehashed = start - self._hash.length
            self._rehash(start)
            os.lseek(self._fd, start, os.SEEK_SET)
            if pool is not None:
                direct_fd = open_direct(part)
                if direct_fd is not None:
                    self._direct = DirectAppender(direct_fd, self._fd, start, pool)
        except BaseException:
            self._close_fds()
            raise
        self.received = start

    def _saved_hash(self, start: int) -> ResumableSha256:
        """The saved state if it covers no more than the kept prefix, else a fresh hash."""
        saved = hash_state.decode(
            os.pread(self._state_fd, hash_state.RECORD_BYTES, 0), hash_state.boot_id()
        )
        return saved if saved is not None and saved.length <= start else ResumableSha256()

    def _rehash(self, length: int) -> None:
        """Hash the kept bytes the saved state does not cover (read from disk)."""
        at = self._hash.length
        while at < length:
            data = os.pread(self._fd, min(_READ, length - at), at)
            if not data:
                raise OSError(f"{self.path} is shorter than {length} bytes")
            self._hash.update(data)
            at += len(data)

    def write(self, chunk: bytes | memoryview) -> None:
        if self._direct is not None:
            self._direct.write(chunk)
        else:
            view = memoryview(chunk)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        self._hash.update(chunk)  # OpenSSL, without the GIL
        self.received += len(chunk)
        if self.received % BLOCK == 0 and (self._direct is None or not self._direct.pending):
            # The file holds exactly what was hashed: a resume may start from this state.
            os.pwrite(self._state_fd, hash_state.encode(self._hash, hash_state.boot_id()), 0)

    def sha256_hex(self) -> str:
        return self._hash.hexdigest()

    def size_on_disk(self) -> int:
        """The staged file's size (after `close`, every received byte is in it)."""
        return self.path.stat().st_size

    def close(self) -> None:
        """Write what is still buffered and close; OSError if that write failed."""
        try:
            if self._direct is not None:
                direct, self._direct = self._direct, None
                direct.close()
        finally:
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._state_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._state_fd = -1


class Staging:
    """The staging directory of one controller.

    `direct_io` False writes through the page cache (every byte reaches the kernel as it
    arrives); True (the default) uses O_DIRECT where the filesystem allows it.
    """

    def __init__(self, root: Path, direct_io: bool = True) -> None:
        self.root = root
        self._pool = BufferPool() if direct_io else None

    def _paths(self, device_id: str, segment_id: str) -> tuple[Path, Path]:
        base = self.root / device_id
        return base / f"{segment_id}.part", base / f"{segment_id}.json"

    def held(self, device_id: str, segment_id: str) -> tuple[int, Header] | None:
        """(bytes staged, their header), or None when nothing usable is staged."""
        part, meta = self._paths(device_id, segment_id)
        try:
            header = Header(**json.loads(meta.read_text(encoding="utf-8")))
            size = part.stat().st_size
        except (OSError, ValueError, TypeError):
            return None
        return size, header

    def open(self, device_id: str, header: Header, plan: OffsetPlan) -> StagedUpload:
        """Open the part file positioned at `plan.start`; FRESH rewrites the header sidecar."""
        part, meta = self._paths(device_id, header.segment_id)
        part.parent.mkdir(parents=True, exist_ok=True)
        if plan.action is StagingAction.FRESH:
            part.unlink(missing_ok=True)
            state_path(part).unlink(missing_ok=True)
            _write_json(meta, asdict(header) | {"offset": 0, "lease_id": ""})
        else:
            _unshare(part, plan.start)
        return StagedUpload(part, plan.start, self._pool)

    def discard(self, device_id: str, segment_id: str) -> None:
        part, meta = self._paths(device_id, segment_id)
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        state_path(part).unlink(missing_ok=True)
        part.with_suffix(".part.tmp").unlink(missing_ok=True)  # an interrupted `_unshare`

    def device_entries(self, device_id: str) -> list[tuple[str, int, float]]:
        """(segment_id, bytes staged, mtime) of one device's staged uploads (its budget)."""
        found: list[tuple[str, int, float]] = []
        base = self.root / device_id
        try:
            metas = list(base.glob("*.json"))
        except OSError:
            return found
        for meta in metas:
            try:
                st = meta.with_suffix(".part").stat()
                size, mtime = st.st_size, max(st.st_mtime, meta.stat().st_mtime)
            except OSError:
                size, mtime = 0, 0.0
            found.append((meta.stem, size, mtime))
        return found

    def entries(self) -> Iterator[tuple[str, str, float]]:
        """(device_id, segment_id, mtime) of every staged upload (for recovery and sweeping)."""
        if not self.root.is_dir():
            return
        for device_dir in self.root.iterdir():
            if not device_dir.is_dir():
                continue
            for meta in device_dir.glob("*.json"):
                part = meta.with_suffix(".part")
                try:
                    mtime = max(meta.stat().st_mtime, part.stat().st_mtime)
                except OSError:
                    mtime = 0.0
                yield device_dir.name, meta.stem, mtime

    def sweep(self, max_age_s: float, now_s: float) -> int:
        """Delete staged uploads untouched for `max_age_s` (abandoned); returns how many."""
        removed = 0
        for device_id, segment_id, mtime in list(self.entries()):
            if now_s - mtime > max_age_s:
                self.discard(device_id, segment_id)
                removed += 1
        return removed


def state_path(part: Path) -> Path:
    """The saved hash state beside a part file (hash_state.py)."""
    return part.with_suffix(".sha")


def _unshare(part: Path, keep: int) -> None:
    """Give a part file that is also a stored object (a hard link) an inode of its own,
    before anything could change it: a resume from below its end truncates and rewrites.
    A linked part is always complete, so resuming at its end writes nothing: no copy."""
    try:
        st = part.stat()
    except FileNotFoundError:
        return
    if st.st_nlink < 2 or keep >= st.st_size:
        return
    tmp = part.with_suffix(".part.tmp")
    try:
        with open(part, "rb") as src, open(tmp, "wb") as out:
            left = keep
            while left > 0 and (data := src.read(min(_READ, left))):
                out.write(data)
                left -= len(data)
        os.replace(tmp, part)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
