"""The segment buffer with real files and a real SQLite index in tmp_path (and a real tmpfs)."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.clock import ManualClock
from edge_agent.model import Gap, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.store import DiskFullError, SegmentBuffer, StoreError
from edge_agent.store.files import FileOps

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SEC = 1_000_000
SEG = 10 * SEC


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + 3600 * SEC)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "buffer"


@pytest.fixture
def buf(root: Path, clock: ManualClock) -> Iterator[SegmentBuffer]:
    b = SegmentBuffer.open(root, 10_000_000, clock)
    yield b
    b.close()


def put(b: SegmentBuffer, cam: str, i: int, size: int = 1000, **kw: object) -> SegmentInfo:
    """Write a segment the way the segmenter does (temp_path, write, commit)."""
    path = b.temp_path(cam)
    path.write_bytes(os.urandom(size))
    return b.commit(cam, path, T0 + i * SEG, SEG, **kw)  # type: ignore[arg-type]


def files_on_disk(root: Path, sub: str = "segments") -> list[str]:
    base = root / sub
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


def snapshot(b: SegmentBuffer, root: Path) -> tuple[object, ...]:
    return (
        b.segments(),
        b.holds(),
        b.stats(),
        b.evictions(only_unreported=False),
        b.gaps(),
        files_on_disk(root),
        {c: b.last_sha256(c) for c in ("camA", "camB")},
    )


# -- commit, query, reopen --------------------------------------------------------------------


def test_commit_query_and_chain_survive_reopen(root: Path, clock: ManualClock) -> None:
    b = SegmentBuffer.open(root, 10_000_000, clock)
    a = [put(b, "camA", i) for i in range(4)]
    bb = [put(b, "camB", i, flags=SegmentFlag.DISCONTINUITY) for i in range(2)]
    assert a[0].segment_id == f"camA-{T0}" and a[0].prev_sha256 == ""
    assert [s.prev_sha256 for s in a[1:]] == [s.sha256 for s in a[:-1]]
    data = b.path_of(a[2]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == a[2].sha256 and len(data) == a[2].size_bytes
    assert b.get(a[1].segment_id) == a[1] and b.get("nope") is None
    assert b.segments("camA", T0 + SEG + 1, T0 + 3 * SEG) == [a[1], a[2]]  # overlap, half-open
    assert b.segments(start_us=T0 + 15 * SEC, end_us=T0 + 16 * SEC) == [a[1], bb[1]]
    assert b.segments() == [*a, *bb]  # camera then start
    assert b.unsent(3) == [a[0], bb[0], a[1]]  # oldest first across cameras
    assert b.unsent(camera_id="camB") == bb
    assert bb[0].flags is SegmentFlag.DISCONTINUITY
    b.close()

    b = SegmentBuffer.open(root, 10_000_000, clock)
    assert b.segments() == [*a, *bb]
    assert b.last_sha256("camA") == a[-1].sha256 and b.last_sha256("camZ") == ""
    nxt = put(b, "camA", 4)
    assert nxt.prev_sha256 == a[-1].sha256
    assert b.verify_chain("camA", check_files=True) == []
    assert b.verify_chain("camB", check_files=True) == []
    b.close()


def test_upload_state_stats_and_age(buf: SegmentBuffer, clock: ManualClock) -> None:
    assert buf.oldest_unsent_age_s() is None
    segs = [put(buf, "camA", i, size=100 * (i + 1)) for i in range(3)]
    buf.mark_uploaded(segs[0].segment_id)
    buf.mark_uploaded(segs[0].segment_id)  # idempotent
    assert buf.get(segs[0].segment_id).state is SegmentState.UPLOADED  # type: ignore[union-attr]
    assert buf.segments(state=SegmentState.UPLOADED) == [buf.get(segs[0].segment_id)]
    stats = buf.stats()
    assert (stats.uploaded_segments, stats.uploaded_bytes) == (1, 100)
    assert (stats.unsent_segments, stats.unsent_bytes) == (2, 500)
    assert stats.total_bytes == 600 and stats.quota_bytes == 10_000_000
    assert stats.oldest_unsent_start_us == segs[1].start_us
    # the clock is at T0 + 1 h; the oldest unsent recording started at T0 + 10 s
    assert buf.oldest_unsent_age_s() == pytest.approx(3590.0)
    clock.advance(10)
    assert buf.oldest_unsent_age_s() == pytest.approx(3600.0)


def test_duplicate_start_gets_a_deterministic_unique_id(buf: SegmentBuffer) -> None:
    first = put(buf, "camA", 0)
    second = put(buf, "camA", 0)
    third = put(buf, "camA", 0)
    assert [first.segment_id, second.segment_id, third.segment_id] == [
        f"camA-{T0}",
        f"camA-{T0}-1",
        f"camA-{T0}-2",
    ]
    assert third.prev_sha256 == second.sha256


def test_gaps_are_durable_idempotent_and_ranged(root: Path, clock: ManualClock) -> None:
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        b.record_gap(Gap("camA", T0, T0 + 5 * SEC, "camera_lost"))
        b.record_gap(Gap("camA", T0, T0 + 5 * SEC, "camera_lost"))
        b.record_gap(Gap("camB", T0 + 60 * SEC, T0 + 70 * SEC, "stall"))
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        assert b.gaps() == [
            Gap("camA", T0, T0 + 5 * SEC, "camera_lost"),
            Gap("camB", T0 + 60 * SEC, T0 + 70 * SEC, "stall"),
        ]
        assert b.gaps("camB") == [Gap("camB", T0 + 60 * SEC, T0 + 70 * SEC, "stall")]
        assert b.gaps(start_us=T0 + 5 * SEC, end_us=T0 + 60 * SEC) == []


# -- quota and holds --------------------------------------------------------------------------


def test_quota_pressure_evicts_in_order_keeps_holds_records_losses(
    root: Path, clock: ManualClock
) -> None:
    b = SegmentBuffer.open(root, 10_000, clock)  # room for ten 1000-byte segments
    a = [put(b, "camA", i) for i in range(5)]
    c = [put(b, "camB", i) for i in range(5)]
    b.mark_uploaded(a[3].segment_id)
    b.mark_uploaded(c[4].segment_id)
    held = b.hold("camA", a[0].start_us, a[1].end_us, "case-7")  # a0, a1 are evidence
    assert b.hold("camA", a[0].start_us, a[1].end_us, "case-7") == held  # idempotent
    assert b.stats().held_segments == 2

    new = [put(b, "camA", 5 + i) for i in range(4)]
    present = {s.segment_id for s in b.segments()}
    # uploaded first (a3 then c4, oldest first), then the oldest unsent not held (c0, c1)
    gone = [a[3], c[4], c[0], c[1]]
    assert [r.segment_id for r in b.evictions(only_unreported=False)] == [
        s.segment_id for s in gone
    ]
    assert present.isdisjoint(s.segment_id for s in gone)
    assert {a[0].segment_id, a[1].segment_id} <= present and {n.segment_id for n in new} <= present
    assert b.stats().total_bytes == 10_000
    assert sorted(files_on_disk(root)) == sorted(s.filename for s in b.segments())

    losses = b.evictions()  # unreported: only the unsent ones (uploaded ones are no loss)
    assert [(r.segment_id, r.was_uploaded) for r in losses] == [
        (c[0].segment_id, False),
        (c[1].segment_id, False),
    ]
    r0 = losses[0]
    assert (r0.camera_id, r0.start_us, r0.end_us, r0.size_bytes) == ("camB", T0, T0 + SEG, 1000)
    assert r0.at_us == clock.now_us() and not r0.reported
    assert b.eviction_reasons([r0.record_id]) == {r0.record_id: "quota"}
    b.mark_evictions_reported([r.record_id for r in losses])
    b.mark_evictions_reported([r.record_id for r in losses])  # idempotent
    assert b.evictions() == []
    assert b.verify_chain("camA") == [] and b.verify_chain("camB") == []
    b.close()


def test_everything_held_stays_over_quota_until_release(buf_small: SegmentBuffer) -> None:
    b = buf_small
    first = [put(b, "camA", i) for i in range(3)]  # quota is 3000
    h = b.hold("camA", T0, T0 + 100 * SEG, "case-1")
    extra = put(b, "camA", 3)
    assert b.evictions(only_unreported=False) == []  # held data is never deleted
    assert b.get(extra.segment_id) is not None  # and the new segment is kept
    assert b.over_quota_bytes() == 1000
    assert b.stats().total_bytes == 4000
    assert b.release(h.hold_id) is True
    assert b.release(h.hold_id) is False
    assert b.holds() == []
    # releasing applied the quota at once: the oldest unsent went
    assert [r.segment_id for r in b.evictions()] == [first[0].segment_id]
    assert b.over_quota_bytes() == 0


def test_a_smaller_quota_applies_when_the_buffer_opens(root: Path, clock: ManualClock) -> None:
    with SegmentBuffer.open(root, 10_000, clock) as b:
        segs = [put(b, "camA", i) for i in range(6)]
    with SegmentBuffer.open(root, 2500, clock) as b:
        assert b.segments() == segs[4:]
        assert [r.segment_id for r in b.evictions()] == [s.segment_id for s in segs[:4]]
        assert b.enforce_quota() == 0


@pytest.fixture
def buf_small(root: Path, clock: ManualClock) -> Iterator[SegmentBuffer]:
    b = SegmentBuffer.open(root, 3000, clock)
    yield b
    b.close()


def test_upload_finishing_after_eviction_turns_the_loss_into_no_loss(
    buf_small: SegmentBuffer,
) -> None:
    segs = [put(buf_small, "camA", i) for i in range(4)]
    [loss] = buf_small.evictions()
    assert loss.segment_id == segs[0].segment_id and not loss.was_uploaded
    buf_small.mark_uploaded(segs[0].segment_id)
    assert buf_small.evictions() == []
    [record] = buf_small.evictions(only_unreported=False)
    assert record.was_uploaded and record.reported


def test_pruning_old_reported_evictions_keeps_the_chain_verifiable(
    buf_small: SegmentBuffer, clock: ManualClock
) -> None:
    for i in range(8):
        put(buf_small, "camA", i)
    losses = buf_small.evictions()
    assert len(losses) == 5
    assert buf_small.prune_evictions(clock.now_us() + 1) == 0  # nothing reported yet
    buf_small.mark_evictions_reported([r.record_id for r in losses[:3]])
    assert buf_small.prune_evictions(clock.now_us() + 1) == 3
    assert len(buf_small.evictions(only_unreported=False)) == 2
    assert buf_small.verify_chain("camA") == []
    put(buf_small, "camA", 8)
    assert buf_small.verify_chain("camA", check_files=True) == []


# -- crash repair and tampering ----------------------------------------------------------------


def test_open_removes_temp_leftovers_and_unindexed_files(root: Path, clock: ManualClock) -> None:
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        kept = put(b, "camA", 0)
        b.temp_path("camA").write_bytes(b"half a segment")  # killed while writing
        orphan = root / "segments" / "camA" / "20260101" / "camA-999.ts"
        orphan.write_bytes(b"renamed but never indexed")  # killed between rename and insert
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        assert files_on_disk(root, "tmp") == []
        assert files_on_disk(root) == [kept.filename]
        assert b.segments() == [kept]
        assert b.evictions(only_unreported=False) == []


def test_missing_or_damaged_files_are_recorded_as_losses(root: Path, clock: ManualClock) -> None:
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        segs = [put(b, "camA", i) for i in range(3)]
        b.path_of(segs[0]).unlink()
        with b.path_of(segs[1]).open("ab") as f:
            f.write(b"x")
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        assert b.segments() == [segs[2]]
        losses = b.evictions()
        assert [r.segment_id for r in losses] == [segs[0].segment_id, segs[1].segment_id]
        reasons = b.eviction_reasons([r.record_id for r in losses])
        assert sorted(reasons.values()) == ["damaged at open", "missing at open"]
        assert files_on_disk(root, "quarantine") == [segs[1].filename.replace("/", "_")]
        assert b.verify_chain("camA") == []  # the lost links are known, not holes
        with b.path_of(segs[2]).open("r+b") as f:
            f.write(b"\0")  # same size, different content: only a re-hash sees it
        problems = b.verify_chain("camA", check_files=True)
        assert len(problems) == 1 and segs[2].segment_id in problems[0]


def test_unreadable_index_is_refused_and_segment_files_are_kept(
    root: Path, clock: ManualClock
) -> None:
    with SegmentBuffer.open(root, 10_000_000, clock) as b:
        seg = put(b, "camA", 0)
    for suffix in ("-wal", "-shm"):
        Path(f"{root / 'index.sqlite3'}{suffix}").unlink(missing_ok=True)
    (root / "index.sqlite3").write_bytes(b"this is not an SQLite database" * 200)
    with pytest.raises(StoreError, match="cannot open buffer index .*index.sqlite3"):
        SegmentBuffer.open(root, 10_000_000, clock)
    assert files_on_disk(root) == [seg.filename]  # nothing deleted on the way out
    with pytest.raises(StoreError, match="quota_bytes"):
        SegmentBuffer.open(root, 0, clock)


def test_a_second_process_cannot_open_the_same_buffer(buf: SegmentBuffer, root: Path) -> None:
    with pytest.raises(StoreError, match="in use by another process"):
        SegmentBuffer.open(root, 10_000_000, ManualClock())


def test_closed_buffer_refuses_work(root: Path, clock: ManualClock) -> None:
    b = SegmentBuffer.open(root, 10_000_000, clock)
    b.close()
    b.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        b.stats()


# -- concurrency ------------------------------------------------------------------------------


def test_camera_threads_commit_concurrently_under_quota(root: Path, clock: ManualClock) -> None:
    b = SegmentBuffer.open(root, 40_000, clock)
    cams = [f"cam{i}" for i in range(4)]
    errors: list[BaseException] = []

    def run(cam: str) -> None:
        try:
            for i in range(15):
                put(b, cam, i, size=1000 + 37 * i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in cams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    kept = b.segments()
    evicted = b.evictions(only_unreported=False)
    assert len(kept) + len(evicted) == 60
    assert b.stats().total_bytes == sum(s.size_bytes for s in kept) <= 40_000
    assert sorted(files_on_disk(root)) == sorted(s.filename for s in kept)
    for cam in cams:
        assert b.verify_chain(cam, check_files=True) == []
    b.close()


# -- bad input: a clear error, nothing changed ------------------------------------------------


def test_bad_input_is_refused_and_changes_nothing(
    buf: SegmentBuffer, root: Path, tmp_path: Path
) -> None:
    seg = put(buf, "camA", 0)
    buf.hold("camA", T0, T0 + SEG, "case-1")
    outside = tmp_path / "elsewhere.ts"
    outside.write_bytes(b"not the buffer's")
    good_tmp = buf.temp_path("camA")
    good_tmp.write_bytes(b"data")
    empty = buf.temp_path("camA")
    empty.write_bytes(b"")
    huge = buf.temp_path("camA")
    with huge.open("wb") as f:
        f.truncate(10_000_001)  # larger than the whole quota
    link = root / "tmp" / "link.ts"
    link.symlink_to(outside)
    before = snapshot(buf, root)
    tmp_before = files_on_disk(root, "tmp")

    cases: list[tuple[str, object]] = [
        ("duration_us", lambda: buf.commit("camA", good_tmp, T0, -1)),
        ("start_us", lambda: buf.commit("camA", good_tmp, -5, SEG)),
        ("start_us", lambda: buf.commit("camA", good_tmp, "soon", SEG)),  # type: ignore[arg-type]
        ("invalid camera id", lambda: buf.commit("../etc", good_tmp, T0, SEG)),
        ("invalid camera id", lambda: buf.temp_path("")),
        ("container", lambda: buf.commit("camA", good_tmp, T0, SEG, container="avi")),
        ("flags", lambda: buf.commit("camA", good_tmp, T0, SEG, flags=64)),  # type: ignore[arg-type]
        ("not a temp file of this buffer", lambda: buf.commit("camA", outside, T0, SEG)),
        ("not a temp file", lambda: buf.commit("camA", root / "index.sqlite3", T0, SEG)),
        ("does not exist or is not a file", lambda: buf.commit("camA", link, T0, SEG)),
        ("does not exist", lambda: buf.commit("camA", root / "tmp" / "gone.ts", T0, SEG)),
        ("is empty", lambda: buf.commit("camA", empty, T0, SEG)),
        ("more than the whole buffer quota", lambda: buf.commit("camA", huge, T0, SEG)),
        ("reversed range", lambda: buf.hold("camA", T0 + SEG, T0, "case-2")),
        ("reversed range", lambda: buf.hold("camA", T0, T0, "case-2")),
        ("case_id", lambda: buf.hold("camA", T0, T0 + SEG, "")),
        ("unknown segment", lambda: buf.mark_uploaded("camA-42")),
        ("unknown eviction record", lambda: buf.mark_evictions_reported([1, 999])),
        ("must be integers", lambda: buf.mark_evictions_reported(["1"])),  # type: ignore[list-item]
        ("reversed range", lambda: buf.segments("camA", T0 + SEG, T0)),
        ("limit", lambda: buf.unsent(0)),
        ("reversed range", lambda: buf.record_gap(Gap("camA", T0 + 5, T0, "stall"))),
        ("gap reason", lambda: buf.record_gap(Gap("camA", T0, T0 + 5, ""))),
        ("not a temp file", lambda: buf.discard(outside)),
        ("not inside the buffer", lambda: buf.path_of(_with_filename(seg, "../../x"))),
    ]
    for message, call in cases:
        with pytest.raises(StoreError, match=message):
            call()  # type: ignore[operator]
    assert buf.release("no-such-hold") is False
    assert snapshot(buf, root) == before
    assert files_on_disk(root, "tmp") == tmp_before  # bad input leaves the temp file alone
    assert outside.read_bytes() == b"not the buffer's"
    assert buf.verify_chain("camA", check_files=True) == []


def _with_filename(info: SegmentInfo, filename: str) -> SegmentInfo:
    from dataclasses import replace

    return replace(info, filename=filename)


def test_commit_errors_name_the_camera_and_file(buf: SegmentBuffer) -> None:
    tmp = buf.temp_path("camB")
    tmp.write_bytes(b"")
    with pytest.raises(StoreError) as info:
        buf.commit("camB", tmp, T0, -1)
    assert "camera camB" in str(info.value)
    with pytest.raises(StoreError) as info:
        buf.commit("camB", tmp, T0, SEG)
    assert "camera camB" in str(info.value) and tmp.name in str(info.value)


# -- disk full ------------------------------------------------------------------------------


class FullAt(FileOps):
    """Real file operations, except the chosen step fails with ENOSPC once armed."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.armed = False

    def _maybe_fail(self, step: str) -> None:
        if self.armed and step == self.step:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def hash_and_sync(self, path: Path) -> tuple[int, str]:
        self._maybe_fail("sync")
        return super().hash_and_sync(path)

    def ensure_dir(self, path: Path) -> None:
        self._maybe_fail("mkdir")
        super().ensure_dir(path)

    def rename(self, src: Path, dst: Path) -> None:
        self._maybe_fail("rename")
        super().rename(src, dst)

    def fsync_dir(self, path: Path) -> None:
        self._maybe_fail("fsync_dir")
        super().fsync_dir(path)


@pytest.mark.parametrize("step", ["sync", "mkdir", "rename", "fsync_dir"])
def test_disk_full_at_any_commit_step_drops_only_that_segment(
    root: Path, clock: ManualClock, step: str
) -> None:
    ops = FullAt(step)
    b = SegmentBuffer.open(root, 10_000_000, clock, file_ops=ops)
    for i in range(3):
        put(b, "camA", i)
    put(b, "camB", 0)
    before = snapshot(b, root)
    ops.armed = True
    tmp = b.temp_path("camB")
    tmp.write_bytes(os.urandom(500))
    with pytest.raises(DiskFullError, match="camera camB") as info:
        b.commit("camB", tmp, T0 + SEG, SEG)
    assert tmp.name in str(info.value)
    assert not tmp.exists()
    assert snapshot(b, root) == before
    ops.armed = False  # space is back: the camera carries on, its chain unbroken
    after = put(b, "camB", 2)
    assert after.prev_sha256 == before[-1]["camB"]  # type: ignore[index]
    assert b.verify_chain("camB", check_files=True) == []
    b.close()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, so the disk really fills (needs root, as the agent's tests run)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a 2 MiB tmpfs at {mnt}: {done.stderr.strip()} "
            "(run the tests as root, as CI does)",
            pytrace=False,
        )
    yield mnt
    if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_gives_disk_full_error_and_harms_nothing(
    tiny_fs: Path, clock: ManualClock
) -> None:
    root = tiny_fs / "buffer"
    b = SegmentBuffer.open(root, 100_000_000, clock)  # the quota is not what stops us
    for i in range(4):
        put(b, "camA", i, size=100_000)
    pending = b.temp_path("camA")
    pending.write_bytes(os.urandom(100_000))  # written before the disk filled up
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as full:
            while True:
                os.write(fd, b"\0" * 65536)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    before = snapshot(b, root)

    # the segmenter's own write fails first; it discards the temp file
    tmp = b.temp_path("camA")
    with pytest.raises(OSError), tmp.open("wb") as f:
        f.write(os.urandom(100_000))
        f.flush()
    b.discard(tmp)
    # a segment already written cannot be indexed: the index cannot grow
    with pytest.raises(DiskFullError, match="camera camA") as info:
        b.commit("camA", pending, T0 + 4 * SEG, SEG)
    assert pending.name in str(info.value)
    assert not pending.exists()
    assert snapshot(b, root) == before
    assert b.verify_chain("camA", check_files=True) == []

    filler.unlink()  # space is back: the agent carries on, nothing was harmed
    again = put(b, "camA", 5, size=100_000)
    assert again.prev_sha256 == before[-1]["camA"]  # type: ignore[index]
    assert b.verify_chain("camA", check_files=True) == []
    b.close()
    with SegmentBuffer.open(root, 100_000_000, clock) as reopened:
        assert len(reopened.segments("camA")) == 5
        assert reopened.verify_chain("camA", check_files=True) == []
