"""The TS demuxer's run fast path gives exactly what the packet-at-a-time path gives.

Fed one 188-byte packet per call, `TsDemuxer` never sees a run (a run needs the next packet
in the same buffer), so that is the reference; fed the same bytes in any other chunking it
takes runs of plain packets in one step. Streams are random: PAT/PMT, video and audio PES of
any size, adaptation fields (PCR, stuffing, random access) anywhere, priority, error and
scrambling bits, packets of unknown PIDs, junk between packets.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.gb28181 import tsdemux
from controller.gb28181.ps import H264, AccessUnit
from controller.gb28181.tsdemux import TS_PACKET, TsDemuxer, plain_runs
from tests.unit.test_gb28181_media import IDR, P_FRAME, _pes, _section, make_ts

VIDEO, AUDIO, OTHER = 0x100, 0x101, 0x1FF


def _psi() -> bytes:
    pat = _section(0, b"\x00\x01\xc1\x00\x00\x00\x01\xf0\x00")
    es = b"\x1b\xe1\x00\xf0\x00" + b"\x0f\xe1\x01\xf0\x00"
    pmt = _section(2, b"\x00\x01\xc1\x00\x00\xe1\x00\xf0\x00" + es)
    return _packet(0, pat, True, 0, b"") + _packet(0x1000, pmt, True, 0, b"")


def _packet(pid: int, payload: bytes, start: bool, flags: int, adapt: bytes) -> bytes:
    """One packet: `flags` ORed into byte 1 (error 0x80, priority 0x20) and byte 3
    (scrambling, as flags >> 8); `adapt` an adaptation field body, b"" for none."""
    b1 = (0x40 if start else 0) | (flags & 0xA0) | (pid >> 8)
    room = TS_PACKET - 4 - (1 + len(adapt) if adapt else 0)
    body = payload[:room]
    if adapt or len(body) < room:
        fill = TS_PACKET - 4 - 1 - len(adapt) - len(body)
        field = adapt + b"\xff" * fill
        if not adapt and fill:  # a stuffing-only field needs its flags byte
            field = b"\x00" + b"\xff" * (fill - 1)
        head = bytes((0x47, b1, pid & 0xFF, 0x30 | ((flags >> 8) & 0xC0)))
        return head + bytes((len(field),)) + field + body
    return bytes((0x47, b1, pid & 0xFF, 0x10 | ((flags >> 8) & 0xC0))) + body


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Each PID's packets in order, the PIDs' packets interleaved at random."""
    queues: dict[int, list[bytes]] = {VIDEO: [], AUDIO: [], OTHER: []}
    for n in range(draw(st.integers(1, 8))):
        pid = draw(st.sampled_from([VIDEO, VIDEO, AUDIO, OTHER]))
        size = draw(st.sampled_from([0, 5, 170, 184, 2000, 9000]))
        pes = _pes(9000 + 3600 * n, bytes((n,)) * size)
        first = True
        while pes or first:
            adapt = b""
            if draw(st.integers(0, 5)) == 0:  # PCR, random access, or bare stuffing
                adapt = draw(st.sampled_from([b"\x10" + b"\x00" * 6, b"\x40", b"\x00"]))
            flags = draw(st.sampled_from([0, 0, 0, 0x20, 0x80, 0x4000]))
            pkt = _packet(pid, pes, first, flags, adapt)
            consumed = TS_PACKET - 4 - (1 + pkt[4] if pkt[3] & 0x20 else 0)
            pes, first = pes[consumed:], False
            queues[pid].append(pkt)
            if draw(st.integers(0, 30)) == 0:
                queues[pid].append(b"\x00" * draw(st.integers(1, 200)))  # junk: a resync
    out = [_psi()]
    while any(queues.values()):
        pid = draw(st.sampled_from(sorted(p for p, q in queues.items() if q)))
        take = draw(st.integers(1, 12))
        out += queues[pid][:take]
        del queues[pid][:take]
    return b"".join(out)


def _units(ts: bytes, cuts: list[int]) -> list[AccessUnit]:
    demux, units, at = TsDemuxer(), [], 0
    for cut in sorted(cuts) + [len(ts)]:
        units += demux.feed(ts[at:cut])
        at = max(at, cut)
    return units + demux.flush()


@settings(max_examples=100, deadline=None)
@given(streams(), st.lists(st.integers(0, 20_000), max_size=6))
def test_runs_give_the_units_of_packet_at_a_time(ts: bytes, cuts: list[int]) -> None:
    reference = _units(ts, list(range(0, len(ts), TS_PACKET)))
    assert _units(ts, [min(c, len(ts)) for c in cuts]) == reference


def test_a_run_stops_at_anything_but_a_plain_packet_of_its_pid() -> None:
    plain = _packet(VIDEO, b"\x11" * 184, False, 0, b"")
    runs = plain_runs(VIDEO)
    for stop in (
        _packet(VIDEO, b"\x11" * 184, True, 0, b""),  # a new PES
        _packet(AUDIO, b"\x11" * 184, False, 0, b""),  # another PID
        _packet(VIDEO, b"\x11" * 100, False, 0, b"\x00"),  # an adaptation field
        _packet(VIDEO, b"\x11" * 184, False, 0x80, b""),  # the error bit
        b"\x00" + plain[1:],  # no sync byte
    ):
        data = plain * 3 + stop + plain
        assert runs.match(data, 0).end() == 3 * TS_PACKET
    assert runs.match(plain * 2 + plain[:100], 0).end() == 2 * TS_PACKET  # whole packets


def test_live_chunks_with_runs_give_whole_frames_and_an_oversize_unit_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ts = make_ts(H264, [(9000, IDR), (12600, P_FRAME), (16200, P_FRAME)])
    units = TsDemuxer().feed(ts)
    demux = TsDemuxer()
    assert [u.pts for u in units + demux.feed(ts) + demux.flush()] == [9000, 12600] * 2 + [16200]
    assert units[0].key and not units[1].key and units[0].data == IDR
    monkeypatch.setattr(tsdemux, "MAX_PES_BYTES", 20_000)  # grown past in a run of plain packets
    big = make_ts(H264, [(0, IDR + b"\x00" * 30_000), (3600, P_FRAME)])
    demux = TsDemuxer()
    assert [u.pts for u in demux.feed(big) + demux.flush()] == [3600] and demux.errors == 1


@settings(max_examples=100, deadline=None)
@given(streams(), st.lists(st.integers(0, 20_000), max_size=6))
def test_whole_is_feed_then_flush(ts: bytes, cuts: list[int]) -> None:
    """`feed(chunk, whole=True)` (the live pump's call: a unit found whole at the chunk's end
    is made at once) gives exactly `feed(chunk) + flush()`, chunk by chunk, in any state."""
    whole, split = TsDemuxer(), TsDemuxer()
    at = 0
    for cut in sorted(min(c, len(ts)) for c in cuts) + [len(ts)]:
        chunk, at = ts[at:cut], max(at, cut)
        assert whole.feed(chunk, True) == split.feed(chunk) + split.flush()
    assert whole.errors == split.errors
