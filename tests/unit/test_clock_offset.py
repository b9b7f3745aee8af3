"""The agent's clock against the controller's: NTP-like samples, the best estimate (pure)."""

from __future__ import annotations

from controller.api.routes.catalog import agent_flag_names
from edge_agent.clock import (
    ClockOffset,
    ClockSample,
    ManualClock,
    ShiftedClock,
    SkewEstimate,
    estimate_skew,
)
from edge_agent.health import payloads as pl
from edge_agent.model import SegmentFlag
from protos.vigil.v1 import fleet_pb2

S = 1_000_000
T0 = 1_800_000_000_000_000


def sample(rtt_ms: float, mono: float, up_share: float = 0.5, skew_s: float = 10.0) -> ClockSample:
    """An RPC by an agent whose clock is `skew_s` ahead, sent at agent monotonic time
    `mono`; the request takes `up_share` of the round trip (0.5: symmetric)."""
    rtt = int(rtt_ms * 1000)
    t_recv = T0 + int(skew_s * S) + int(mono * S)
    t_send = t_recv - rtt
    server = t_send + int(rtt * up_share) - int(skew_s * S)
    return ClockSample(t_send, t_recv, server, mono)


def test_offset_and_error_of_one_sample() -> None:
    s = ClockSample(t_send_us=T0, t_recv_us=T0 + 40_000, server_us=T0 + 20_000 - 10 * S, mono_s=1)
    assert s.skew_us == 10 * S and s.error_us == 20_000
    # Asymmetric delays move the estimate, but never outside the error bound.
    slow_up = ClockSample(T0, T0 + 40_000, T0 + 39_000, 1)  # the true skew was 0
    assert abs(slow_up.skew_us) <= slow_up.error_us


def test_best_sample_is_the_shortest_round_trip() -> None:
    samples = [sample(800, 1, up_share=0.9), sample(4, 2), sample(900, 3, up_share=0.1)]
    assert samples[0].skew_us != 10 * S and samples[2].skew_us != 10 * S
    assert estimate_skew(samples, 3) == SkewEstimate(10 * S, 2000, 3)


def test_old_and_impossible_samples_are_ignored() -> None:
    assert estimate_skew([sample(2, 0)], now_mono_s=1000, max_age_s=900) is None
    backwards = ClockSample(T0 + 10, T0, T0, 1)  # answer before request
    assert estimate_skew([backwards], 1) is None
    assert estimate_skew([ClockSample(T0, T0 + 1, 0, 1)], 1) is None  # no server time
    assert estimate_skew([], 0) is None


def test_a_clock_step_discards_samples_from_before_it() -> None:
    before = sample(2, mono=1)  # precise, but from before the agent's clock was fixed
    after = sample(300, mono=2, skew_s=0.0)  # NTP stepped the agent's clock back 10 s
    est = estimate_skew([before, after], 2)
    assert est == SkewEstimate(0, 150_000, 1)


def test_beyond_threshold_needs_the_whole_error_bound() -> None:
    assert SkewEstimate(10 * S, 3000, 1).beyond(2.0)
    assert SkewEstimate(-3 * S, 500_000, 1).beyond(2.0)
    assert not SkewEstimate(2_400_000, 500_000, 1).beyond(2.0)
    assert not SkewEstimate(1_900_000, 0, 1).beyond(2.0)


def test_clock_offset_holder_on_a_skewed_clock() -> None:
    controller = ManualClock(T0)
    agent = ShiftedClock(controller, 10 * S)  # the NVR is 10 s ahead
    offset = ClockOffset(agent, threshold_s=2.0)
    assert offset.estimate() is None and not offset.skewed()
    sent = agent.now_us()
    controller.advance(0.002)
    server = controller.now_us()
    controller.advance(0.002)
    offset.observe(sent, agent.now_us(), server)
    est = offset.estimate()
    assert est is not None and est.skew_us == 10 * S and est.error_us == 2000
    assert offset.skewed()
    offset.observe(agent.now_us(), agent.now_us() - 1, server)  # impossible: ignored
    assert offset.estimate() == est
    controller.advance(1000)  # samples age out: unknown again, not "skewed"
    assert offset.estimate() is None and not offset.skewed()


def test_health_reports_offset_and_uptime() -> None:
    msg = fleet_pb2.Health(device_id="d")
    pl.add_clock(msg, None, 12.5)
    assert msg.uptime_s == 12.5 and not msg.clock_offset_known
    pl.add_clock(msg, SkewEstimate(-10 * S, 2500, 4), 13.0)
    assert msg.clock_offset_known
    assert (msg.clock_offset_ms, msg.clock_offset_error_ms) == (-10_000.0, 2.5)


def test_agent_flag_names_in_the_api() -> None:
    assert agent_flag_names(0) == []
    assert agent_flag_names(int(SegmentFlag.CLOCK_SKEW | SegmentFlag.TRUNCATED)) == [
        "truncated",
        "clock_skew",
    ]
    assert agent_flag_names(1 | 16) == ["discontinuity", "bit_4"]
