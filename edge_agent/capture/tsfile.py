"""A segment file the MPEG-TS muxer writes through: counters continued and hashed on the way.

Why: the buffer needs each segment's SHA-256 (the hash chain) and the camera's MPEG-TS
continuity counters must run on across its files (`tscontinuity`). Done after the muxer closed
the file, that is two more passes over every byte (read and rewrite the counters, read again to
hash): for 8 cameras at 4 Mbit/s, a third of what the agent costs beyond the remux itself.
Here the muxer hands its output to `write` (PyAV calls it with whole buffers), which fixes the
counters of the whole TS packets in it, hashes them and writes them to the file, once.

The counters this file ends with are adopted by the writer only when the segment is committed:
a dropped segment leaves the camera's counters where its last committed file left them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from .tscontinuity import TS_PACKET, continue_counters

# The muxer's write size: whole TS packets, about 376 KiB (~0.75 s of a 4 Mbit/s camera). Each
# write is one call into Python with the GIL (counter pass, hash, file write); 94 KiB buffers
# made four times as many, and cost ~3 % more of the agent's CPU with 8 cameras (paired runs,
# docs/benchmarks.md "Agent capture", fifth look).
BUFFER_BYTES = TS_PACKET * 2048


class TsWriteThrough:
    """A write-only file object for `av.open(f, "w", format="mpegts")` (no seek: MPEG-TS
    never seeks). Not thread-safe: it belongs to one segment of one writer."""

    def __init__(self, path: Path, counters: Mapping[int, int]) -> None:
        self.path = path
        self.counters: dict[int, int] = dict(counters)
        self.size = 0
        self._sha = hashlib.sha256()
        self._pending = b""  # the start of a TS packet whose end has not come yet
        self._file = open(path, "xb")  # closed by close()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take what the muxer wrote; returns its length, as a file's write does."""
        chunk = self._pending + bytes(data) if self._pending else bytes(data)
        whole = len(chunk) - len(chunk) % TS_PACKET
        if whole:
            fixed, self.counters = continue_counters(chunk[:whole], self.counters)
            self._out(fixed)
        self._pending = chunk[whole:]
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Write any trailing bytes as they are (the muxer only writes whole packets) and
        close the file. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._pending:
                self._out(self._pending)
                self._pending = b""
            self._file.flush()
        finally:
            self._file.close()

    @property
    def digest(self) -> tuple[int, str]:
        """(size, SHA-256 hex) of every byte written so far."""
        return self.size, self._sha.hexdigest()

    def _out(self, data: bytes | bytearray) -> None:
        self._file.write(data)
        self._sha.update(data)
        self.size += len(data)
