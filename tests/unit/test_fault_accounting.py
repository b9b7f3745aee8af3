"""The fault run's outside accounting finds what it must (tests/rig/fault_accounting.py)."""

from __future__ import annotations

from tests.rig.fault_accounting import CityRow, Facts, Recorded, account


def rec(sid: str, start: int, state: str, sha: str = "") -> Recorded:
    return Recorded(sid, "c", start, 10, sha or f"h{sid}", state)


def row(sid: str, start: int, prev: str, stored: str | None = "") -> CityRow:
    sha = f"h{sid}"
    return CityRow(sid, "c", start, sha, prev, f"c/{sid}.ts", sha if stored == "" else stored)


def test_a_clean_run_balances() -> None:
    facts = Facts(
        [rec("1", 1, "uploaded"), rec("2", 2, "evicted_unsent", ""), rec("3", 3, "uploaded"),
         rec("4", 4, "unsent")],
        [row("1", 1, ""), row("3", 3, "h2")],
        ["c/1.ts", "c/3.ts"],
        set(),
    )  # fmt: skip
    acc = account(facts)
    assert (acc.recorded, acc.uploaded, acc.buffered, acc.evicted_with_record) == (4, 2, 1, 1)
    assert acc.lost == acc.duplicated == acc.disagree == acc.unexplained_breaks == []
    assert acc.breaks == 1  # at the recorded eviction: explained
    assert "evicted with record" in acc.table()


def test_losses_duplicates_disagreement_and_unexplained_breaks_are_found() -> None:
    facts = Facts(
        [rec("1", 1, "uploaded"), rec("2", 2, "uploaded"), rec("3", 3, "evicted_unsent", ""),
         rec("5", 5, "uploaded")],
        [row("1", 1, ""), row("3b", 3, "h1"), row("5", 5, "hx", stored=None)],
        ["c/1.ts", "c/3b.ts", "c/5.ts", "c/9.ts", "d/1.ts"],
        {"3"},
    )  # fmt: skip
    acc = account(facts)
    assert acc.lost == ["2 (uploaded)", "5 (uploaded)"]  # not in the city / object missing
    assert acc.avoidable == ["3"]  # staged complete at the city, then evicted
    assert any("stored twice: 1" in d for d in acc.duplicated)
    assert acc.orphan_objects == ["c/9.ts", "d/1.ts"]
    assert acc.disagree == ["5: store holds None"]
    assert acc.unexplained_breaks == ["c: 3b -> 5"]
