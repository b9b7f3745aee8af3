"""The saved SHA-256 state of a staged upload: what lets a resume skip re-reading its prefix.

A staged upload (staging.py) hashes its bytes as they arrive. After every chunk that leaves
the part file holding exactly the bytes received (nothing waiting in the O_DIRECT buffer, on
a 64-byte mark), the running state (sha.py) is written over a small sidecar, one `pwrite`
of a fixed-size record. A resume from `offset` continues from the saved state when it covers
no more than `offset` bytes and re-reads only what lies between (usually nothing), instead
of re-hashing the whole prefix from disk.

When the state is trusted: only in the boot it was written in. A process crash (kill -9)
leaves the kernel holding exactly the bytes that were written, so the state and the file
agree. After a power loss either may be stale or torn; the record then names another boot,
is ignored, and the prefix is re-hashed from the disk as before: a torn tail is still caught
by the final SHA-256 check. A record that does not parse or fails its CRC is ignored too.
"""

from __future__ import annotations

import zlib
from functools import cache
from pathlib import Path

from controller.ingest.sha import ResumableSha256

RECORD_BYTES = 192  # fixed, so a newer record always overwrites the whole older one
_VERSION = "v1"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@cache
def boot_id() -> str:
    """This boot's id ("" where the kernel does not say: nothing is trusted then)."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def encode(sha: ResumableSha256, boot: str) -> bytes:
    """The record of `sha`'s state (at a 64-byte mark; ValueError otherwise)."""
    body = f"{_VERSION} {boot or '-'} {sha.state()}"
    line = f"{body} {zlib.crc32(body.encode('ascii')):08x}"
    if len(line) >= RECORD_BYTES:
        raise ValueError(f"hash state record too long ({len(line)} bytes)")
    return line.ljust(RECORD_BYTES - 1).encode("ascii") + b"\n"


def decode(raw: bytes, boot: str) -> ResumableSha256 | None:
    """The hash a record saved, or None unless it is whole, intact and of this boot."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    body, _, crc = text.rpartition(" ")
    parts = body.split(" ")
    if len(parts) != 3 or parts[0] != _VERSION or not boot or parts[1] != boot:
        return None
    if crc != f"{zlib.crc32(body.encode('ascii')):08x}":
        return None
    try:
        return ResumableSha256.from_state(parts[2])
    except ValueError:
        return None
