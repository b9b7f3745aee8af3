"""World-readable data (issue 10, failure 9): the controller's database (password hashes,
audit, grant state) and the agent's buffer (footage and its index) are private, checked and
tightened at every start-up, with nothing lost.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from edge_agent.clock import ManualClock
from edge_agent.store import SegmentBuffer
from tests.integration.test_attacks_support import Target

T0 = 1_767_225_600_000_000
SEG = 10_000_000


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_controller_tightens_a_world_readable_database_at_start(tmp_path: Path) -> None:
    target = Target(tmp_path)
    try:
        data = target.data
        assert target.login("admin-1")
        rows = target.snapshot().rows
        for path in (data, data / "catalog.db", data / "catalog.db-wal", data / "catalog.db-shm"):
            assert mode(path) & 0o077 == 0, f"{path} is {mode(path):04o}"
    finally:
        target.close()
    # An installation from before: data dir 0755, database and WAL 0644.
    os.chmod(data, 0o755)
    with sqlite3.connect(data / "catalog.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("UPDATE user_account SET display_name = display_name")
    for path in data.glob("catalog.db*"):
        os.chmod(path, 0o644)
    os.chmod(data / "catalog.db", 0o644)
    restarted = Target(tmp_path, fresh=False)  # same data dir, a fresh process
    try:
        assert mode(data) == 0o700 and mode(data / "catalog.db") == 0o600
        for path in data.glob("catalog.db*"):
            assert mode(path) == 0o600, f"{path} is {mode(path):04o}"
        log = restarted.log_text()
        assert "catalog.db: mode 0644 -> 0600" in log and "mode 0755 -> 0700" in log, log
        assert restarted.login("admin-1")  # nothing lost: the accounts and rows are there
        assert restarted.snapshot().rows == rows
        assert restarted.audit_verifies() and restarted.alive()
    finally:
        restarted.close()


def test_agent_buffer_is_private_and_tightened_at_open(tmp_path: Path) -> None:
    root = tmp_path / "buffer"
    clock = ManualClock(T0 + 3600 * 1_000_000)
    buf = SegmentBuffer.open(root, 10_000_000, clock)
    path = buf.temp_path("cam-1")
    path.write_bytes(os.urandom(1000))
    buf.commit("cam-1", path, T0, SEG)
    segments = buf.segments()
    buf.close()
    index = root / "index.sqlite3"
    assert mode(root) == 0o700 and mode(index) == 0o600 and mode(root / "lock") == 0o600
    for sub in ("tmp", "segments", "quarantine"):
        assert mode(root / sub) == 0o700, sub
    # A buffer from before: everything readable by every local user.
    loose = [root, index, root / "lock", *root.rglob("*")]
    for p in loose:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    buf = SegmentBuffer.open(root, 10_000_000, clock)
    try:
        assert buf.segments() == segments  # nothing lost
        for p in [root, *root.rglob("*")]:
            assert mode(p) & 0o077 == 0, f"{p} is {mode(p):04o}"
    finally:
        buf.close()
