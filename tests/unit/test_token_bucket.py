"""The upload token bucket: exact long-run rate, bounded burst, run-time rate changes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.clock import ManualClock
from edge_agent.uplink.ratelimit import TokenBucket

MBIT = 1_000_000


def send_paced(bucket: TokenBucket, clock: ManualClock, chunks: list[int]) -> float:
    """Send chunks as the uplink does (wait what take() says, then send); return elapsed s."""
    start = clock.monotonic()
    for n in chunks:
        clock.advance(bucket.take(n))
    return clock.monotonic() - start


def test_long_run_rate_equals_configured_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(8 * MBIT, burst_bytes=64 * 1024, clock=clock)  # 1 MB/s
    chunks = [64 * 1024] * 1000  # 65.5 MB
    elapsed = send_paced(bucket, clock, chunks)
    # The initial burst is free; everything after it goes out at exactly 1 MB/s.
    expected = (sum(chunks) - 64 * 1024) / 1_000_000
    assert elapsed == pytest.approx(expected, rel=1e-9)


def test_burst_is_bounded_after_idle() -> None:
    clock = ManualClock()
    burst = 256 * 1024
    bucket = TokenBucket(4 * MBIT, burst_bytes=burst, clock=clock)
    send_paced(bucket, clock, [burst] * 3)  # drain, then build some debt
    clock.advance(3600.0)  # an hour idle must not save up an hour of tokens
    free = 0
    while bucket.take(1024) == 0.0:
        free += 1024
    assert free == burst


def test_chunk_larger_than_burst_waits_instead_of_failing() -> None:
    clock = ManualClock()
    bucket = TokenBucket(8 * MBIT, burst_bytes=16 * 1024, clock=clock)
    assert bucket.take(16 * 1024) == 0.0
    wait = bucket.take(4 * 1024 * 1024)
    assert wait == pytest.approx(4 * 1024 * 1024 / 1_000_000)


def test_set_rate_takes_effect_for_the_next_take() -> None:
    clock = ManualClock()
    bucket = TokenBucket(8 * MBIT, burst_bytes=1_000, clock=clock)
    bucket.take(1_000)
    assert bucket.take(1_000_000) == pytest.approx(1.0)
    clock.advance(1.0)  # debt repaid
    bucket.set_rate(80 * MBIT)  # a lease with ten times the rate
    assert bucket.take(1_000_000) == pytest.approx(0.1)
    assert bucket.rate_bps == 80 * MBIT


def test_unlimited_never_waits_and_can_be_limited_later() -> None:
    clock = ManualClock()
    bucket = TokenBucket(None, burst_bytes=1_000, clock=clock)
    assert all(bucket.take(10_000_000) == 0.0 for _ in range(100))
    bucket.set_rate(8_000)  # 1 kB/s
    bucket.take(1_000)
    assert bucket.take(1_000) == pytest.approx(1.0)


def test_refund_returns_unsent_bytes_up_to_the_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(8_000, burst_bytes=1_000, clock=clock)
    bucket.take(1_000)
    bucket.take(500)  # 500 bytes of debt
    bucket.refund(10_000)  # an aborted upload gives back more than the burst
    assert bucket.take(1_000) == 0.0
    assert bucket.take(1) > 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1000), (-5, 1000), (8000, 0), (8000, -1)], ids=str)
def test_bad_construction_is_refused(rate: int, burst: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        TokenBucket(rate, burst_bytes=burst, clock=ManualClock())


def test_bad_arguments_are_refused_and_change_nothing() -> None:
    clock = ManualClock()
    bucket = TokenBucket(8_000, burst_bytes=1_000, clock=clock)
    with pytest.raises(ValueError, match="negative"):
        bucket.take(-1)
    with pytest.raises(ValueError, match="negative"):
        bucket.refund(-1)
    with pytest.raises(ValueError, match="positive"):
        bucket.set_rate(0)
    assert bucket.rate_bps == 8_000
    assert bucket.take(1_000) == 0.0  # the full burst is still there


@settings(max_examples=200, deadline=None)
@given(
    rate_kbps=st.integers(min_value=8, max_value=100_000),
    burst=st.integers(min_value=1, max_value=4 * 1024 * 1024),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4 * 1024 * 1024), st.floats(0.0, 30.0)),
        max_size=60,
    ),
)
def test_never_more_than_burst_plus_rate_times_time(
    rate_kbps: int, burst: int, steps: list[tuple[int, float]]
) -> None:
    """Whatever the chunk sizes and idle gaps, bytes sent by time t <= burst + rate * t."""
    clock = ManualClock()
    bucket = TokenBucket(rate_kbps * 1000, burst_bytes=burst, clock=clock)
    start = clock.monotonic()
    sent = 0
    for size, idle in steps:
        clock.advance(idle)
        clock.advance(bucket.take(size))
        sent += size
        elapsed = clock.monotonic() - start
        allowed = burst + rate_kbps * 1000 / 8 * elapsed
        assert sent <= allowed + 1e-6 * max(1.0, allowed)
