"""The cascade's per-frame shortcuts give the bytes the standard's layout gives. Pure.

Pack headers are read back bit by bit as ISO 13818-1 §2.5.3.3 lays them out (not with the
packer's own arithmetic); frames of every size go through PS and RTP and come back whole;
repeated PAT/PMT are parsed once, a changed PMT is still taken.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.gb28181.ps import H264, MAX_PES_PAYLOAD, AccessUnit, PsPacker, pack_header
from controller.gb28181.psdemux import PsDemuxer
from controller.gb28181.rtp import (
    GSO_MAX_SEGMENTS,
    GSO_SEGMENT,
    MAX_PAYLOAD,
    RtpPacketizer,
    gso_batches,
    parse_rtp,
)
from controller.gb28181.tsdemux import TsDemuxer
from tests.unit.test_gb28181_media import IDR, _section, _ts_packets


def _bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


@given(st.integers(0, (1 << 40) - 1), st.integers(1, (1 << 22) - 1))
def test_pack_header_fields_sit_where_the_standard_puts_them(scr: int, rate: int) -> None:
    head = pack_header(scr, rate)
    assert len(head) == 14 and head[:4] == b"\x00\x00\x01\xba"
    b = _bits(head[4:])
    assert b[0:2] == "01" and b[5] == b[21] == b[37] == b[47] == "1"  # markers
    assert int(b[2:5] + b[6:21] + b[22:37], 2) == scr & 0x1FFFFFFFF  # SCR base, 33 bits
    assert int(b[38:47], 2) == 0  # SCR extension
    assert int(b[48:70], 2) == rate and b[70:72] == "11"
    assert b[72:77] == "11111" and int(b[77:80], 2) == 0  # reserved, no stuffing


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, (1 << 33) - 1),
            st.sampled_from([0, 1, 3003]),
            st.sampled_from([1, 100, MAX_PAYLOAD - 40, MAX_PAYLOAD, 5000, MAX_PES_PAYLOAD + 7]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_frames_of_any_size_come_back_whole_through_ps_and_rtp(
    frames: list[tuple[int, int, int]],
) -> None:
    units = [AccessUnit(H264, 0, None, True, IDR)]  # the stream starts at a keyframe
    units += [
        AccessUnit(H264, pts, (pts - lag) % (1 << 33) if lag else None, False, b"\x41" * size)
        for pts, lag, size in frames
    ]
    packer, rtp, demux = PsPacker(), RtpPacketizer(7), PsDemuxer()
    out: list[AccessUnit] = []
    seqs: list[int] = []
    for au in units:
        ps = packer.pack(au)
        assert ps is not None
        packets = rtp.packets_of(ps, au.pts or 0)
        parsed = [parse_rtp(p) for p in packets]
        assert all(len(p) <= 12 + MAX_PAYLOAD for p in packets)
        assert [p[0] >> 7 for p in (x[1:2] for x in packets)] == [0] * (len(packets) - 1) + [1]
        assert b"".join(x[4] for x in parsed) == ps
        seqs += [x[1] for x in parsed]
        out += demux.feed(ps)
    out += demux.flush()
    assert seqs == list(range(len(seqs)))
    assert [(u.pts, u.data) for u in out] == [(u.pts, u.data) for u in units]
    # a DTS is written (and read back) only where it differs from the PTS
    assert [u.dts for u in out] == [u.dts if u.dts != u.pts else None for u in units]


def _pmt(types: bytes) -> bytes:
    return b"".join(x.ljust(188, b"\xff") for x in _ts_packets(0x1000, _section(2, types), True))


def test_a_repeated_pmt_is_parsed_once_and_a_changed_one_is_taken() -> None:
    pat = _section(0, b"\x00\x01\xc1\x00\x00\x00\x01\xf0\x00")
    head = b"\x00\x01\xc1\x00\x00\xe1\x00\xf0\x00"
    video = _pmt(head + b"\x1b\xe1\x00\xf0\x00")
    both = _pmt(head + b"\x1b\xe1\x00\xf0\x00" + b"\x0f\xe1\x01\xf0\x00")
    demux = TsDemuxer()
    calls: list[bytes] = []
    parse = demux._pmt

    def counted(payload: bytes) -> None:
        calls.append(payload)
        parse(payload)

    demux._pmt = counted  # type: ignore[method-assign]
    demux.feed(b"".join(x.ljust(188, b"\xff") for x in _ts_packets(0, pat, True)))
    demux.feed(video + video + video)
    assert len(calls) == 1 and demux.audio_type is None
    demux.feed(both + both)
    assert len(calls) == 2 and demux.audio_type == 0x0F


def _frame(rtp: RtpPacketizer, size: int) -> list[bytes]:
    return rtp.packets_of(b"\x5a" * size, size)


def test_gso_batches_are_one_send_per_frame_and_cut_back_into_the_same_packets() -> None:
    rtp = RtpPacketizer(9)
    small, two, big = _frame(rtp, 300), _frame(rtp, MAX_PAYLOAD + 1), _frame(rtp, 100 * 1400 - 7)
    exact = _frame(rtp, MAX_PAYLOAD)  # a frame whose last packet is full size
    packets = small + two + big + exact + small
    sends = gso_batches(packets)
    # a frame's packets are one send (the big one in sends of at most GSO_MAX_SEGMENTS);
    # a full-size last packet runs on into the next frame's, which the kernel cuts the same
    assert [len(s) for s in sends] == [
        len(small[0]),
        len(b"".join(two)),
        GSO_MAX_SEGMENTS * GSO_SEGMENT,
        GSO_MAX_SEGMENTS * GSO_SEGMENT,
        len(b"".join(big[90:])),
        len(b"".join(exact + small)),
    ]
    cut = [s[i : i + GSO_SEGMENT] for s in sends for i in range(0, len(s), GSO_SEGMENT)]
    assert cut == packets
    assert gso_batches([]) == [] and gso_batches(small) == small
