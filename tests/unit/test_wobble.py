"""Frame timestamps nudged back onto their cadence, by a bounded amount (pure)."""

from __future__ import annotations

from edge_agent.capture.wobble import LIMIT_TICKS, nudge

STEP = 3600  # 25 fps at 90 kHz


def run(raw: list[int]) -> list[int]:
    out: list[int] = []
    corr = 0
    for dts in raw:
        corr = nudge(out[-1] if out else None, dts, STEP, corr)
        out.append(dts + corr)
    return out


def test_a_wobble_of_a_few_ticks_is_taken_out() -> None:
    raw = [0, 3600, 7199, 10800, 14391, 18003, 21600]
    assert run(raw) == [0, 3600, 7200, 10800, 14400, 18000, 21600]


def test_real_changes_of_pace_show_through() -> None:
    raw = [0, 3600, 10800, 14400]  # a frame missing: two steps
    assert run(raw) == raw
    assert run([0, 3600, 3600 + 90_000]) == [0, 3600, 93_600]  # a jump stays a jump


def test_a_clock_that_really_runs_fast_is_moved_at_most_the_limit() -> None:
    raw = [i * 3599 for i in range(100)]  # 25.007 fps: one tick short each frame
    out = run(raw)
    assert all(abs(o - r) <= LIMIT_TICKS for o, r in zip(out, raw, strict=True))
    assert all(b > a for a, b in zip(out, out[1:], strict=False))
