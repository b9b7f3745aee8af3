"""Continuity counters carried across one camera's MPEG-TS segment files (pure)."""

from __future__ import annotations

import random

from edge_agent.capture.tscontinuity import (
    TS_PACKET,
    _per_packet,
    continue_counters,
    counters_continue,
)


def ts(pid: int, cc: int, payload: bool = True) -> bytes:
    afc = 0x10 if payload else 0x20
    head = bytes([0x47, (pid >> 8) & 0x1F, pid & 0xFF, afc | cc])
    return head + b"\xff" * (TS_PACKET - 4)


def fresh_file() -> bytes:
    """What a new muxer writes: PAT, PMT, then video and audio, counters from 0."""
    return b"".join(
        [ts(0, 0), ts(0x1000, 0), ts(0x100, 0), ts(0x100, 1), ts(0x101, 0), ts(0x100, 2)]
    )


def test_a_second_file_continues_the_counters_of_the_first() -> None:
    first, state = continue_counters(fresh_file(), {})
    assert bytes(first) == fresh_file()  # the first file of a camera is left as the muxer made it
    assert state == {0: 0, 0x1000: 0, 0x100: 2, 0x101: 0}
    second, state2 = continue_counters(fresh_file(), state)
    assert counters_continue(first + second, {}) == []
    assert counters_continue(fresh_file() * 2, {}) != []  # unfixed: breaks at the boundary
    assert state2 == {0: 1, 0x1000: 1, 0x100: 5, 0x101: 1}
    assert len(second) == len(fresh_file())


def test_counters_wrap_at_16_and_adaptation_only_packets_do_not_advance() -> None:
    data = b"".join([ts(0x100, 0), ts(0x100, 0, payload=False), ts(0x100, 1)])
    out, state = continue_counters(data, {0x100: 14})
    assert [b & 0x0F for b in out[3::TS_PACKET]] == [15, 15, 0]
    assert state == {0x100: 0}
    assert [b & 0xF0 for b in out[3::TS_PACKET]] == [0x10, 0x20, 0x10]  # flags untouched


def test_non_ts_bytes_and_null_packets_are_left_alone() -> None:
    junk = b"\x00" * TS_PACKET
    null = ts(0x1FFF, 7)
    out, state = continue_counters(junk + null + b"\x47\x01", {0x1FFF: 3})
    assert bytes(out) == junk + null + b"\x47\x01"
    assert state == {0x1FFF: 3}


def muxer_file(seed: int, packets: int = 3000) -> bytes:
    """What one fresh muxer writes: tables, video and audio interleaved, each PID counting
    from 0 without a break, some video packets with an adaptation field only."""
    rng = random.Random(seed)
    counters: dict[int, int] = {}
    out = []
    for _ in range(packets):
        pid = rng.choices([0, 0x1000, 0x11, 0x100, 0x101], [2, 2, 1, 90, 5])[0]
        payload = pid != 0x100 or rng.random() > 0.05
        cc = counters.get(pid, -1)
        cc = (cc + 1) & 0x0F if payload else max(cc, 0)
        counters[pid] = cc
        out.append(ts(pid, cc, payload))
    return b"".join(out)


def test_the_fast_path_follows_the_rule_packet_by_packet() -> None:
    state: dict[int, int] = {}
    slow_state: dict[int, int] = {}
    joined = bytearray()
    for seed in range(6):
        data = muxer_file(seed)
        fast, state = continue_counters(data, state)
        slow, slow_state = _per_packet(data, slow_state)
        assert fast == slow and state == slow_state
        joined += fast
    assert counters_continue(joined, {}) == []


def test_a_file_with_bad_sync_bytes_takes_the_slow_path_and_is_still_right() -> None:
    data = muxer_file(1, 200) + b"\x00" * TS_PACKET + muxer_file(2, 200)
    last = {0x100: 9, 0: 3}
    assert continue_counters(data, last) == _per_packet(data, last)
