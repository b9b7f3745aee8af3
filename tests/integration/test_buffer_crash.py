"""kill -9 the buffer's writer at random moments; every reopen must find the buffer sound.

A subprocess (buffer_crash_writer.py) commits segments of two cameras as fast as it can, with
uploads, holds, gaps and evictions mixed in. The test SIGKILLs it after a random delay (which
lands in start-up, recovery, hashing, rename, the SQLite commit, eviction...), reopens the
buffer in this process and checks the invariants the agent relies on.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import sys
import time
from pathlib import Path

from edge_agent.clock import SystemClock
from edge_agent.store import SegmentBuffer
from tests.support import ManagedProcess, wait_until

WRITER = Path(__file__).with_name("buffer_crash_writer.py")
QUOTA = 300_000  # ~10 segments of 1-60 kB: most commits evict something
KILLS = 30


def acknowledged(log: Path) -> dict[str, str]:
    """segment_id -> sha256 of every commit the writer saw return (complete lines only)."""
    acked: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines(keepends=True):
        parts = line.split()
        if line.endswith("\n") and len(parts) == 3 and parts[0] == "C":
            acked[parts[1]] = parts[2]
    return acked


def check_invariants(root: Path, acked: dict[str, str]) -> tuple[int, int]:
    """Reopen (which recovers) and check; returns (segments present, unsent evictions)."""
    with SegmentBuffer.open(root, QUOTA, SystemClock()) as buf:
        assert [p for p in (root / "tmp").iterdir()] == [], "temp leftovers after open"
        segments = buf.segments()
        ids = [s.segment_id for s in segments]
        assert len(ids) == len(set(ids)), "duplicate segment ids"
        on_disk = sorted(
            p.relative_to(root / "segments").as_posix()
            for p in (root / "segments").rglob("*")
            if p.is_file()
        )
        assert on_disk == sorted(s.filename for s in segments), "files and index rows differ"
        for s in segments:
            data = buf.path_of(s).read_bytes()
            assert len(data) == s.size_bytes, f"{s.segment_id}: size differs from index"
            assert hashlib.sha256(data).hexdigest() == s.sha256, f"{s.segment_id}: hash differs"
        assert buf.stats().total_bytes == sum(s.size_bytes for s in segments)
        records = buf.evictions(only_unreported=False)
        evicted = {r.segment_id for r in records}
        assert len(evicted) == len(records) and evicted.isdisjoint(ids), "id both kept and gone"
        reasons = set(buf.eviction_reasons([r.record_id for r in records]).values())
        assert reasons <= {"quota"}, f"a crash lost indexed segments: {reasons}"
        for cam in ("camA", "camB"):
            assert buf.verify_chain(cam) == [], f"chain of {cam} broken"
        present = {s.segment_id: s.sha256 for s in segments}
        for sid, sha in acked.items():
            assert sid in present or sid in evicted, f"acknowledged {sid} vanished"
            if sid in present:
                assert present[sid] == sha, f"acknowledged {sid} changed"
        return len(segments), sum(1 for r in records if not r.was_uploaded)


def test_kill9_at_random_moments_never_breaks_the_buffer(tmp_path: Path) -> None:
    seed = secrets.randbits(32)
    rnd = random.Random(seed)
    root = tmp_path / "buffer"
    acked: dict[str, str] = {}
    mid_run_kills = 0
    for round_no in range(KILLS):
        log = tmp_path / f"writer-{round_no}.log"
        proc = ManagedProcess(
            [sys.executable, str(WRITER), str(root), str(QUOTA), str(rnd.randrange(2**32))],
            log_path=log,
        )
        try:
            if round_no % 4 == 0:  # now and then, kill during start-up and recovery
                time.sleep(rnd.uniform(0.0, 0.3))
            else:  # mostly mid-run: after the first commits, at a random point
                wait_until(
                    lambda log=log, proc=proc: "C " in log.read_text() or not proc.alive(),  # type: ignore[misc]
                    30,
                    "the writer's first commit",
                )
                time.sleep(rnd.uniform(0.0, 0.4))
                mid_run_kills += 1
            assert proc.alive(), f"writer died on its own (seed {seed}):\n{proc.log_text()}"
        finally:
            proc.kill9()
            proc.stop()
        acked.update(acknowledged(log))
        try:
            kept, losses = check_invariants(root, acked)
        except AssertionError as exc:
            raise AssertionError(f"after kill {round_no + 1} (seed {seed}): {exc}") from exc
    assert mid_run_kills >= 16
    assert len(acked) >= 100, f"the writer committed too little to prove anything ({len(acked)})"
    assert losses > 0 and kept > 0  # the quota really was under pressure
    print(f"{KILLS} kills, {len(acked)} acknowledged commits, {kept} kept, {losses} losses")
