"""LogRate: the first occurrence is logged, the rest of the interval counted into the next."""

from edge_agent.capture.lograte import LogRate

S = 1_000_000


def test_first_logged_then_counted_until_the_interval_passes() -> None:
    rate = LogRate(interval_us=60 * S)
    got = [rate.note(t * S // 10) for t in range(0, 900)]  # ten a second for 90 s
    logged = [(i, n) for i, n in enumerate(got) if n is not None]
    assert logged == [(0, 1), (600, 600)]  # at 0 s one; at 60 s the 600 since


def test_nothing_lost_in_the_counts() -> None:
    rate = LogRate(interval_us=5 * S)
    times = [0, 1, 2, 3, 7, 8, 20, 21, 22]
    counts = [n for t in times if (n := rate.note(t * S)) is not None]
    assert counts == [1, 4, 2]  # 0 | 1, 2, 3, 7 | 8, 20; 21 and 22 still pending
    assert rate.note(40 * S) == 3  # 21, 22 and this one
