"""Topics, decoding, history downsampling, rate limiting and command validation (controller)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fleet import history as hi
from controller.fleet.commands import CommandError, build_command
from controller.fleet.decode import MAX_PAYLOAD_BYTES, Decoded, Rejected, decode
from controller.fleet.ratelimit import RatePolicy, take
from controller.fleet.topics import DeviceTopic, parse_topic
from protos.vigil.v1 import fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000


def test_parse_device_topics() -> None:
    assert parse_topic("vigil/v1/wudu/v001/nvr-1/health") == DeviceTopic(
        "wudu", "v001", "nvr-1", "health"
    )
    assert parse_topic("vigil/v1/wudu/v001/nvr-1/cmd/hold") == DeviceTopic(
        "wudu", "v001", "nvr-1", "cmd", "hold"
    )
    for bad in (
        "vigil/v1/controller/state",
        "vigil/v1/a/b/c/weird",
        "other/v1/a/b/c/state",
        "vigil/v1/a//c/state",
        "vigil/v1/a/b/c/cmd/x/y",
        "vigil/v2/a/b/c/state",
        "",
    ):
        assert parse_topic(bad) is None, bad


def test_decode_good_malformed_oversize_and_bad_topic() -> None:
    payload = fleet_pb2.Health(device_id="d", seq=3).SerializeToString()
    ok = decode("vigil/v1/a/b/d/health", payload)
    assert isinstance(ok, Decoded) and ok.message.seq == 3  # type: ignore[union-attr]
    bad = decode("vigil/v1/a/b/d/health", b"\xff\xff\xff\xff")
    assert isinstance(bad, Rejected) and bad.reason == "malformed"
    big = decode("vigil/v1/a/b/d/birth", b"\x00" * (MAX_PAYLOAD_BYTES + 1))
    assert isinstance(big, Rejected) and big.reason == "oversize"
    assert decode("nope", payload) == Rejected("bad_topic", "not a Vigil device topic: 'nope'")


@given(st.binary(max_size=300))
def test_decode_never_raises(blob: bytes) -> None:
    for leaf in ("state", "birth", "health", "event", "cmd_ack"):
        assert isinstance(decode(f"vigil/v1/a/b/d/{leaf}", blob), Decoded | Rejected)


def h(cpu: float, free: int, unsent: int = 0) -> fleet_pb2.Health:
    return fleet_pb2.Health(cpu_pct=cpu, disk_free_bytes=free, segments_unsent=unsent)


def test_history_merges_within_bucket_and_keeps_newest() -> None:
    pol = hi.HistoryPolicy(bucket_s=60, keep=3)
    series: tuple[hi.HealthPoint, ...] = ()
    series = hi.add_sample(series, h(10, 500, 1), T0, pol)
    series = hi.add_sample(series, h(30, 400, 5), T0 + 10 * S, pol)
    assert len(series) == 1
    p = series[0]
    assert (
        p.samples == 2 and p.cpu_pct == 20 and p.disk_free_bytes == 400 and p.segments_unsent == 5
    )
    for i in range(1, 6):
        series = hi.add_sample(series, h(i, 1), T0 + i * 60 * S, pol)
    assert len(series) == 3 and [q.cpu_pct for q in series] == [3, 4, 5]
    assert hi.add_sample(series, h(99, 1), T0, pol) == series  # older than the last bucket


def test_history_without_merge_keeps_first_sample_per_bucket() -> None:
    pol = hi.HistoryPolicy(bucket_s=60, keep=3, merge=False)
    series = hi.add_sample((), h(10, 500), T0, pol)
    series = hi.add_sample(series, h(90, 100), T0 + 10 * S, pol)
    assert len(series) == 1 and series[0].cpu_pct == 10 and series[0].samples == 1
    series = hi.add_sample(series, h(50, 100), T0 + 60 * S, pol)
    assert [p.cpu_pct for p in series] == [10, 50]


def test_token_bucket_burst_then_rate() -> None:
    pol = RatePolicy(rate_per_s=2.0, burst=5.0)
    bucket = None
    allowed = []
    for _ in range(8):
        ok, bucket = take(bucket, 100.0, pol)
        allowed.append(ok)
    assert allowed == [True] * 5 + [False] * 3
    ok, bucket = take(bucket, 100.5, pol)  # half a second refills one token
    assert ok
    ok, _ = take(bucket, 100.6, pol)
    assert not ok


def test_build_command_valid_and_invalid() -> None:
    cmd = build_command("hold", camera_id="cam1", start_us=T0, end_us=T0 + S, case_id="case-7")
    assert cmd.verb == "hold" and cmd.range.end_unix_us == T0 + S
    assert build_command("release", hold_id="abc").hold_id == "abc"
    assert build_command("rebirth").verb == "rebirth"
    bad = [
        lambda: build_command("explode"),
        lambda: build_command("hold", camera_id="cam1", start_us=T0, end_us=T0, case_id="c"),
        lambda: build_command("hold", camera_id="cam1", start_us=T0, end_us=T0 + S),
        lambda: build_command("hold", camera_id="../x", start_us=T0, end_us=T0 + S, case_id="c"),
        lambda: build_command(
            "hold", camera_id="c", start_us=T0, end_us=T0 + 40 * 86400 * S, case_id="c"
        ),
        lambda: build_command("reconfigure", config_toml="  "),
        lambda: build_command("reconfigure", config_toml="x" * (300 * 1024)),
        lambda: build_command(
            "upload_range", camera_id="c", start_us=T0, end_us=T0 + S, traffic_class=99
        ),
    ]
    for make in bad:
        with pytest.raises(CommandError):
            make()
