"""The audit log on a real database (SQLite and PostgreSQL): concurrent appenders never fork
the chain, tampering through SQL is caught, `vigil-controller verify-audit` says so."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from controller.__main__ import main
from controller.audit.chain import AuditEvent
from controller.audit.log import AuditError, AuditLog
from controller.catalog import make_engine
from controller.clock import ManualClock
from controller.grants.codec import raw_public_key
from controller.grants.keys import ensure_keys, load_keys

T0 = 1_767_225_600_000_000
KEY = Ed25519PrivateKey.generate()
PUB = raw_public_key(KEY)


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


def fill(log: AuditLog, n: int, clock: ManualClock) -> None:
    for i in range(n):
        clock.advance(1)
        log.append(
            AuditEvent(
                "playlist" if i % 2 else "grant_minted",
                actor_user=f"user-{i % 3}",
                actor_org="chengxian",
                camera_id=f"cam-{i % 4}",
                case_id="case-7" if i % 5 == 0 else "",
                grant_id=f"{i:032x}",
                detail={"i": i, "名": "值"},
            )
        )


def test_append_checkpoint_search_and_verify(engine: Engine) -> None:
    clock = ManualClock(T0)
    log = AuditLog(engine, clock, KEY, checkpoint_every=8)
    fill(log, 20, clock)
    assert log.checkpoint() is not None  # covers the tail (17..20)
    assert log.checkpoint() is None  # nothing new
    report = log.verify(PUB)
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints, report.uncovered) == (20, 3, 0)
    by_user = log.search(user="user-1")
    assert {e.actor_user for e in by_user} == {"user-1"} and len(by_user) == 7
    assert [e.seq for e in log.search(camera="cam-2", limit=2)] == [19, 15]
    assert {e.seq for e in log.search(case="case-7")} == {1, 6, 11, 16}
    window = log.search(since_us=T0 + 5_000_000, until_us=T0 + 8_000_000)
    assert [e.seq for e in window] == [7, 6, 5]
    assert json.loads(window[0].detail)["名"] == "值"
    with pytest.raises(ValueError):
        log.search(limit=0)


def test_concurrent_appenders_on_two_engines_never_fork(catalog_url: str) -> None:
    engines = [make_engine(catalog_url), make_engine(catalog_url)]
    clock = ManualClock(T0)
    logs = [AuditLog(e, clock, KEY, checkpoint_every=16) for e in engines]
    errors: list[BaseException] = []

    def worker(log: AuditLog, n: int) -> None:
        try:
            for i in range(25):
                log.append(AuditEvent("segment_fetch", actor_user=f"w{n}", detail={"i": i}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(logs[n % 2], n)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    report = logs[0].verify(PUB)
    assert report.ok, report.problems
    assert report.entries == 100 and report.last_seq == 100
    for e in engines:
        e.dispose()


def test_two_replicas_deciding_one_request_at_once_record_exactly_one_decision(
    catalog_url: str,
) -> None:
    """`append_first` (a footage request's approve/refuse) on two engines, as on two
    replicas, racing on ten requests: each request ends with exactly one decision, the
    losers write nothing, and the chain stays whole."""
    engines = [make_engine(catalog_url), make_engine(catalog_url)]
    clock = ManualClock(T0)
    logs = [AuditLog(e, clock, KEY, checkpoint_every=16) for e in engines]
    decisions = ("share_approved", "share_refused")
    won: list[tuple[str, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def decide(n: int) -> None:
        log = logs[n % 2]
        action = decisions[n % 2]
        try:
            start.wait(timeout=30)
            for r in range(10):
                request = f"{r:032x}"
                events = [AuditEvent(action, actor_user=f"admin{n}", grant_id=request)]
                if action == "share_approved":
                    events.append(
                        AuditEvent("grant_minted", actor_user=f"admin{n}", grant_id=request)
                    )
                if log.append_first(events, request, decisions) is not None:
                    won.append((request, n))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(r for r, _ in won) == [f"{r:032x}" for r in range(10)]  # one winner each
    for r in range(10):
        recorded = [e for e in logs[0].search(grant=f"{r:032x}") if e.action in decisions]
        assert len(recorded) == 1, recorded
    report = logs[1].verify(PUB)
    assert report.ok, report.problems
    minted = len(logs[0].search(action="grant_minted"))
    assert report.entries == 10 + minted  # nothing of a losing decision was written
    assert minted == sum(1 for _, n in won if n % 2 == 0)
    for e in engines:
        e.dispose()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE audit_entry SET actor_user = 'nobody' WHERE seq = 5", "entry 5 was edited"),
        ("DELETE FROM audit_entry WHERE seq = 7", "entries 7..7 are missing"),
        ("DELETE FROM audit_entry WHERE seq > 14", "deleted from the end"),
        ("UPDATE audit_entry SET seq = seq + 100 WHERE seq = 3", "does not link"),
        ("DELETE FROM audit_checkpoint WHERE seq = 8", "a checkpoint was deleted"),
        (f"UPDATE audit_checkpoint SET hash = '{'0' * 64}' WHERE seq = 8", "signature invalid"),
    ],
)
def test_tampering_through_sql_is_detected(engine: Engine, sql: str, expected: str) -> None:
    clock = ManualClock(T0)
    log = AuditLog(engine, clock, KEY, checkpoint_every=8)
    fill(log, 20, clock)
    assert log.verify(PUB).ok
    with engine.begin() as conn:
        conn.execute(text(sql))
    report = log.verify(PUB)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems


def test_an_unwritable_log_refuses_loudly(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    log = AuditLog(engine, ManualClock(T0), KEY)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_head"))
    with pytest.raises(AuditError, match="cannot append"):
        log.append(AuditEvent("login"))
    engine.dispose()


def test_verify_audit_cli_with_anchor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    ensure_keys(data)
    keys = load_keys(data)
    engine = make_engine(f"sqlite:///{data / 'catalog.db'}")
    clock = ManualClock(T0)
    log = AuditLog(engine, clock, keys.evidence, checkpoint_every=4)
    fill(log, 10, clock)
    log.checkpoint()
    anchor = tmp_path / "anchor.json"
    assert main(["verify-audit", "--data-dir", str(data), "--save-anchor", str(anchor)]) == 0
    out = capsys.readouterr().out
    assert "entries: 10" in out and "OK: the audit log is intact" in out
    assert json.loads(anchor.read_text())["seq"] == 10
    # Cut the tail *and* its checkpoints: only the anchor can tell.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE seq > 8"))
        conn.execute(text("DELETE FROM audit_checkpoint WHERE seq > 8"))
    assert main(["verify-audit", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["verify-audit", "--data-dir", str(data), "--anchor", str(anchor)]) == 1
    out = capsys.readouterr().out
    assert "no longer in the log" in out and "FAILED" in out
    anchor.write_text("{not json")
    assert main(["verify-audit", "--data-dir", str(data), "--anchor", str(anchor)]) == 2
    assert main(["audit-search", "--data-dir", str(data), "--user", "user-1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all("chengxian/user-1" in ln for ln in lines)
    engine.dispose()
