"""Fair shares of ingest between devices: admission, stall reaping, staging budgets (pure)."""

from __future__ import annotations

from controller.ingest.fairness import (
    Shares,
    Staged,
    Stream,
    admit,
    plan_staging,
    to_reap,
    under_pressure,
)

SHARES = Shares(
    pool=16, per_device=4, reserve=2, stall_s=15.0, staging_bytes=100, staging_entries=3
)


def test_a_device_gets_at_most_its_share() -> None:
    assert admit(SHARES, "noisy", {"noisy": 3}) is None
    refusal = admit(SHARES, "noisy", {"noisy": 4})
    assert refusal is not None and not refusal.pool_short
    assert "device noisy" in refusal.reason and "limit 4 per device" in refusal.reason
    # Others are unaffected by the noisy device's refusal.
    assert admit(SHARES, "quiet", {"noisy": 4}) is None


def test_the_last_free_slots_are_kept_for_devices_with_nothing_in_flight() -> None:
    busy = {"a": 4, "b": 4, "c": 4, "d": 2}  # 14 of 16: two free, the reserve
    refusal = admit(SHARES, "d", busy)
    assert refusal is not None and refusal.pool_short and "kept for other devices" in refusal.reason
    assert admit(SHARES, "newcomer", busy) is None
    assert admit(SHARES, "newcomer", busy | {"newcomer": 1}) is not None  # 15 of 16, holds one


def test_a_full_pool_refuses_everyone_as_pool_short() -> None:
    full = {f"d{i}": 1 for i in range(16)}
    refusal = admit(SHARES, "late", full)
    assert refusal is not None and refusal.pool_short and "limit 16" in refusal.reason


def test_a_small_pool_keeps_no_reserve() -> None:
    small = Shares(pool=3, per_device=3, reserve=2)
    assert small.effective_reserve == 0
    assert admit(small, "a", {"a": 2}) is None
    assert Shares(pool=16, reserve=2).effective_reserve == 2
    assert Shares(pool=4, reserve=2).effective_reserve == 1


def test_stalled_streams_are_reaped_early_only_under_pressure() -> None:
    streams = [Stream(1, "a", 20.0), Stream(2, "b", 5.0), Stream(3, "a", 130.0)]
    assert to_reap(SHARES, streams, 120.0, pressure=False) == [3]
    assert to_reap(SHARES, streams, 120.0, pressure=True) == [1, 3]
    assert under_pressure(SHARES, 14, refused_recently=False)
    assert not under_pressure(SHARES, 13, refused_recently=False)
    assert under_pressure(SHARES, 0, refused_recently=True)


def test_staging_room_is_made_from_the_devices_oldest_inactive_partials() -> None:
    staged = [
        Staged("old", 40, 1.0, active=False),
        Staged("busy", 40, 0.5, active=True),
        Staged("new", 10, 3.0, active=False),
    ]
    plan = plan_staging(SHARES, staged, "next", 30)
    assert plan.refusal is None and plan.discard == ("old",)  # 40+10+30 = 80 <= 100, 3 entries


def test_a_resume_counts_its_declared_size_not_twice() -> None:
    staged = [Staged("mine", 50, 1.0, active=False), Staged("other", 40, 2.0, active=False)]
    assert plan_staging(SHARES, staged, "mine", 60) == plan_staging(SHARES, staged[1:], "x", 60)
    assert plan_staging(SHARES, staged, "mine", 60).discard == ()


def test_staging_full_of_active_uploads_refuses_and_discards_nothing() -> None:
    staged = [Staged("a", 60, 1.0, active=True), Staged("b", 30, 2.0, active=False)]
    plan = plan_staging(SHARES, staged, "c", 50)
    assert plan.refusal is not None and "staging for this device is full" in plan.refusal
    assert plan.discard == ()


def test_the_entry_count_is_bounded_too() -> None:
    staged = [Staged(f"s{i}", 1, float(i), active=False) for i in range(5)]
    plan = plan_staging(SHARES, staged, "next", 1)
    assert plan.refusal is None and plan.discard == ("s0", "s1", "s2")
