"""Appending to a staged upload with O_DIRECT: from one reused, aligned buffer to the disk.

Why: a segment is written once, verified, handed to the object store and rarely read back
soon, so copying it into the page cache buys nothing and costs CPU that ingest competes for
with gRPC itself (TLS, HTTP/2, protobuf). Measured on the 2-core test machine, 8 writers:
buffered writes of fresh data 0.4-2.7 ms of CPU per MB (the high end whenever the page cache
grows into memory not touched before, as it does on a VM), O_DIRECT through a warm buffer
0.25 ms/MB. It also leaves almost nothing for the commit's fsync to write back.

O_DIRECT needs the memory, the file offset and the length aligned (to the device's logical
block; BLOCK covers every disk we deploy on). Chunks arrive in any size, so each one is
copied into a page-aligned buffer after the partial block left over from the previous one;
every whole block is written straight away and the partial one stays in memory, at most
BLOCK - 1 bytes, written with an ordinary write when the stream ends (`close`). A crash loses
at most that tail: the file size is still what resume trusts, and it only ever covers bytes
that were received. A filesystem without O_DIRECT (tmpfs, some network filesystems) refuses
the open or the first write with EINVAL; the appender then writes through the plain file
descriptor, so the result is the same, only slower.
"""

from __future__ import annotations

import errno
import mmap
import os
import threading

BLOCK = 4096
BUFFER_BYTES = 1024 * 1024 + BLOCK  # a 1 MiB chunk plus a carried partial block: one write
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


class BufferPool:
    """Page-aligned buffers (anonymous mmaps) reused across uploads, bounded when idle.

    Reuse matters: memory touched for the first time costs more than the copy into it.
    """

    def __init__(self, size: int = BUFFER_BYTES, keep: int = 32) -> None:
        if size < 2 * BLOCK or size % BLOCK:
            raise ValueError(f"buffer size {size} must be a multiple of {BLOCK}, >= {2 * BLOCK}")
        self.size = size
        self._keep = keep
        self._lock = threading.Lock()
        self._free: list[mmap.mmap] = []

    def acquire(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, self.size)

    def release(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)
                return
        buf.close()


def open_direct(path: str | os.PathLike[str]) -> int | None:
    """A write-only O_DIRECT descriptor of an existing file, or None if unsupported there."""
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


class DirectAppender:
    """Appends to a file from `start` through `direct_fd` (owned: closed by `close`).

    `plain_fd` (not owned) reads the partial block before `start` and writes the tail.
    """

    def __init__(self, direct_fd: int, plain_fd: int, start: int, pool: BufferPool) -> None:
        self._direct_fd = direct_fd
        self._fd = direct_fd
        self._plain_fd = plain_fd
        self._pool = pool
        self._buf = pool.acquire()
        self._view = memoryview(self._buf)
        self._pos = start - start % BLOCK  # where the buffer's first byte goes in the file
        self._pending = 0
        try:
            head = os.pread(plain_fd, start - self._pos, self._pos) if start > self._pos else b""
            if len(head) != start - self._pos:
                raise OSError(errno.EIO, f"staged file shorter than {start} bytes")
        except BaseException:
            self.close()
            raise
        self._view[: len(head)] = head
        self._pending = len(head)

    @property
    def pending(self) -> int:
        """Bytes received but not yet in the file (the partial block held in memory)."""
        return self._pending

    def write(self, chunk: bytes | memoryview) -> None:
        data = memoryview(chunk)
        room = len(self._buf)
        while data:
            n = min(len(data), room - self._pending)
            self._view[self._pending : self._pending + n] = data[:n]
            self._pending += n
            data = data[n:]
            whole = self._pending - self._pending % BLOCK
            if whole:
                self._write_blocks(whole)
                left = self._pending - whole
                self._view[:left] = self._view[whole : self._pending]
                self._pending = left
                self._pos += whole

    def _write_blocks(self, length: int) -> None:
        try:
            _pwrite_all(self._fd, self._view[:length], self._pos)
        except OSError as exc:
            if self._fd != self._direct_fd or exc.errno not in _UNSUPPORTED:
                raise
            self._fd = self._plain_fd  # O_DIRECT opened but refused: write normally
            _pwrite_all(self._fd, self._view[:length], self._pos)

    def close(self) -> None:
        """Write the partial tail block (plain write) and release everything; idempotent.

        Raises OSError if the tail cannot be written: the upload must then not commit.
        """
        if self._direct_fd < 0:
            return
        try:
            if self._pending:
                _pwrite_all(self._plain_fd, self._view[: self._pending], self._pos)
                self._pos += self._pending
                self._pending = 0
        finally:
            self._view.release()
            self._pool.release(self._buf)
            os.close(self._direct_fd)
            self._direct_fd = -1
