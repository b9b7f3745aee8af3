"""Staged uploads on a real filesystem: O_DIRECT appends, resume, and the crash-time contract.

The contract resume relies on: the part file only ever holds bytes that were received, in
order, so its size is a safe resume offset at any moment (a kill -9 leaves the file exactly
as it is between two writes). O_DIRECT keeps the last partial block in memory until `close`,
so the size may lag the bytes received by less than one block, never run ahead of them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from controller.ingest import direct, hash_state
from controller.ingest.direct import BLOCK, BufferPool
from controller.ingest.rules import Header, OffsetPlan, StagingAction
from controller.ingest.staging import StagedUpload, Staging, state_path

MiB = 1024 * 1024
FRESH = OffsetPlan(StagingAction.FRESH, 0)


def header(data: bytes, segment_id: str = "seg1") -> Header:
    return Header(
        segment_id=segment_id,
        camera_id="cam1",
        start_us=1_767_225_600_000_000,
        duration_us=10_000_000,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        prev_sha256="",
    )


def chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    out.append(data[pos:])
    return [c for c in out if c]


def stage(staging: Staging, data: bytes, sizes: list[int]) -> StagedUpload:
    up = staging.open("dev1", header(data), FRESH)
    for chunk in chunks(data, sizes):
        up.write(chunk)
    up.close()
    return up


@pytest.mark.parametrize("direct_io", [True, False])
def test_any_chunk_sizes_land_byte_exact(tmp_path: Path, direct_io: bool) -> None:
    data = os.urandom(5 * MiB + 1234)
    sizes = [1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * MiB + 7, 17, MiB]  # 3 MiB: past the buffer
    up = stage(Staging(tmp_path, direct_io=direct_io), data, sizes)
    assert up.path.read_bytes() == data
    assert up.received == len(data) == up.size_on_disk()
    assert up.sha256_hex() == hashlib.sha256(data).hexdigest()


def test_o_direct_is_really_used_on_this_filesystem(tmp_path: Path) -> None:
    """Guards the benchmark's assumption: the test machine's disk takes O_DIRECT."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    fd = direct.open_direct(probe)
    assert fd is not None, f"{tmp_path} refused O_DIRECT"
    os.close(fd)


def test_the_file_never_holds_more_than_was_received(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB)
    staging = Staging(tmp_path)
    up = staging.open("dev1", header(data), FRESH)
    sent = 0
    rng = random.Random(7)
    try:
        while sent < len(data):
            size = min(rng.randrange(1, 300_000), len(data) - sent)
            up.write(data[sent : sent + size])
            sent += size
            # what a kill -9 right now would leave behind
            on_disk = up.path.read_bytes()
            assert sent - BLOCK < len(on_disk) <= sent
            assert data.startswith(on_disk)
    finally:
        up.close()
    assert up.path.read_bytes() == data


@pytest.mark.parametrize("resume_at", [0, 1, BLOCK, BLOCK + 1, MiB + 5])
def test_resume_keeps_the_prefix_from_any_offset(tmp_path: Path, resume_at: int) -> None:
    data = os.urandom(2 * MiB + 99)
    staging = Staging(tmp_path)
    first = staging.open("dev1", header(data), FRESH)
    first.write(data[: MiB + 3 * BLOCK + 11])  # a crash would have kept this much
    first.close()
    plan = OffsetPlan(StagingAction.CONTINUE, resume_at)
    again = staging.open("dev1", header(data), plan)
    for chunk in chunks(data[resume_at:], [BLOCK + 3, 777]):
        again.write(chunk)
    again.close()
    assert again.path.read_bytes() == data
    assert again.sha256_hex() == hashlib.sha256(data).hexdigest()  # the prefix was rehashed


def test_resuming_a_part_that_is_also_a_stored_object_leaves_the_object_alone(
    tmp_path: Path,
) -> None:
    """A crash between the store's hard link and the catalog row, then a lower resume."""
    data = os.urandom(MiB + 100)
    staging = Staging(tmp_path / "staging")
    up = stage(staging, data, [300_000])
    stored = tmp_path / "object.ts"
    os.link(up.path, stored)  # what LocalObjectStore.adopt_file did before the crash
    again = staging.open("dev1", header(data), OffsetPlan(StagingAction.CONTINUE, 1000))
    again.write(b"\0" * (len(data) - 1000))  # whatever the agent sends now
    again.close()
    assert stored.read_bytes() == data  # the object was not truncated or overwritten
    assert again.path.read_bytes() == data[:1000] + b"\0" * (len(data) - 1000)
    assert stored.stat().st_nlink == 1
    staging.discard("dev1", "seg1")
    assert stored.read_bytes() == data and list((tmp_path / "staging" / "dev1").iterdir()) == []


def test_a_filesystem_refusing_o_direct_gets_plain_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    data = os.urandom(MiB + 5)
    up = stage(Staging(tmp_path), data, [4096, 10])
    assert up.path.read_bytes() == data


def test_o_direct_refused_at_the_first_write_falls_back_to_plain_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some filesystems accept the O_DIRECT open and refuse the write (EINVAL)."""
    real_pwrite = os.pwrite
    direct_fds: set[int] = set()
    real_open = os.open

    def tracking_open(path: Any, flags: int, *args: Any) -> int:
        fd = real_open(path, flags, *args)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    def refusing_pwrite(fd: int, data: Any, offset: int) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "pwrite", refusing_pwrite)
    data = os.urandom(2 * MiB + 3)
    up = stage(Staging(tmp_path), data, [MiB, 5])
    assert direct_fds, "the O_DIRECT descriptor was never opened"
    assert up.path.read_bytes() == data


def test_a_failing_direct_write_is_an_error_not_a_silent_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    data = os.urandom(MiB)
    up = Staging(tmp_path).open("dev1", header(data), FRESH)
    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(OSError) as info:
        up.write(data)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        up.close()  # the tail cannot be written either: the upload must not commit
    monkeypatch.undo()
    assert up.size_on_disk() == 0


def test_buffer_pool_reuses_and_bounds_its_buffers() -> None:
    pool = BufferPool(size=2 * BLOCK, keep=1)
    a, b = pool.acquire(), pool.acquire()
    assert len(a) == 2 * BLOCK and a is not b
    pool.release(a)
    pool.release(b)  # over `keep`: closed, not kept
    assert b.closed and not a.closed
    assert pool.acquire() is a
    for bad in (BLOCK, 3 * BLOCK + 1):
        with pytest.raises(ValueError):
            BufferPool(size=bad)


def test_resuming_a_linked_part_at_its_end_copies_nothing(tmp_path: Path) -> None:
    data = os.urandom(MiB)
    staging = Staging(tmp_path / "staging")
    up = stage(staging, data, [])
    stored = tmp_path / "object.ts"
    os.link(up.path, stored)
    again = staging.open("dev1", header(data), OffsetPlan(StagingAction.CONTINUE, len(data)))
    again.close()
    assert again.sha256_hex() == hashlib.sha256(data).hexdigest()
    assert again.path.stat().st_ino == stored.stat().st_ino  # still shared: nothing to protect
    assert stored.read_bytes() == data


def _interrupted(staging: Staging, data: bytes, received: int) -> None:
    """A stream that received `received` bytes in 64 KiB chunks, then broke."""
    up = staging.open("dev1", header(data), FRESH)
    for chunk in chunks(data[:received], [64 * 1024] * (received // (64 * 1024))):
        up.write(chunk)
    up.close()


def _resume(staging: Staging, data: bytes, at: int) -> StagedUpload:
    again = staging.open("dev1", header(data), OffsetPlan(StagingAction.CONTINUE, at))
    again.write(data[at:])
    again.close()
    assert again.path.read_bytes() == data
    return again


@pytest.mark.parametrize("direct_io", [True, False])
def test_a_resume_continues_the_saved_hash_without_reading_the_prefix(
    tmp_path: Path, direct_io: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * MiB + 5)
    staging = Staging(tmp_path, direct_io=direct_io)
    _interrupted(staging, data, 2 * MiB)
    reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        got = real_pread(fd, size, offset)
        if size != hash_state.RECORD_BYTES:
            reads.append(len(got))
        return got

    monkeypatch.setattr(os, "pread", counting_pread)
    again = _resume(staging, data, 2 * MiB)
    assert again.rehashed == 0 and sum(reads) == 0  # not one byte of the prefix re-read
    assert again.sha256_hex() == hashlib.sha256(data).hexdigest()


def test_a_resume_beyond_the_saved_state_reads_only_the_difference(tmp_path: Path) -> None:
    data = os.urandom(2 * MiB)
    staging = Staging(tmp_path)
    _interrupted(staging, data, MiB + 64 * 1024)
    up = staging.open("dev1", header(data), OffsetPlan(StagingAction.CONTINUE, MiB + 64 * 1024))
    up.write(data[MiB + 64 * 1024 : MiB + 64 * 1024 + 1000])  # not on a block: no new state
    up.close()
    again = _resume(staging, data, MiB + 64 * 1024 + 1000)
    assert again.rehashed == 1000
    assert again.sha256_hex() == hashlib.sha256(data).hexdigest()
    lower = _resume(staging, data, 4096)  # below the saved state: from the start
    assert lower.rehashed == 4096
    assert lower.sha256_hex() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("damage", ["other_boot", "torn", "garbage", "wrong_crc"])
def test_a_state_that_cannot_be_trusted_means_rehashing_from_disk(
    tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(MiB + 3)
    staging = Staging(tmp_path)
    _interrupted(staging, data, 512 * 1024)
    state = state_path(staging.root / "dev1" / "seg1.part")
    record = state.read_bytes()
    assert len(record) == hash_state.RECORD_BYTES
    if damage == "other_boot":  # written before a reboot: the disk may not hold those bytes
        monkeypatch.setattr(hash_state, "boot_id", lambda: "another-boot")
    elif damage == "torn":
        state.write_bytes(record[:50])
    elif damage == "garbage":
        state.write_bytes(os.urandom(hash_state.RECORD_BYTES))
    else:
        state.write_bytes(record.replace(b"v1 ", b"v1  ", 1))
    again = _resume(staging, data, 512 * 1024)
    assert again.rehashed == 512 * 1024
    assert again.sha256_hex() == hashlib.sha256(data).hexdigest()


def test_the_saved_state_goes_with_its_staging(tmp_path: Path) -> None:
    data = os.urandom(MiB)
    staging = Staging(tmp_path)
    _interrupted(staging, data, 512 * 1024)
    part = staging.root / "dev1" / "seg1.part"
    assert state_path(part).exists()
    fresh = staging.open("dev1", header(data), FRESH)  # a new upload of the id: state gone
    fresh.close()
    assert fresh.rehashed == 0
    staging.discard("dev1", "seg1")
    assert list((staging.root / "dev1").iterdir()) == []
