"""PS over RTP in (device media): PS cut anywhere -> whole frames; losses and strangers."""

from __future__ import annotations

from controller.gb28181.ps import H264, H265, AccessUnit, PsPacker
from controller.gb28181.psdemux import PsDemuxer, PsOverRtp
from controller.gb28181.rtp import RtpPacketizer
from tests.unit.test_gb28181_media import IDR, P_FRAME

UNITS = [
    AccessUnit(H264, 3600 * n, 3600 * n, n % 3 == 0, IDR if n % 3 == 0 else P_FRAME + bytes([n]))
    for n in range(7)
]


def ps_of(units: list[AccessUnit]) -> bytes:
    packer = PsPacker()
    return b"".join(p for p in (packer.pack(u) for u in units) if p)


def test_our_ps_cut_anywhere_gives_back_every_frame() -> None:
    ps = ps_of(UNITS)
    for size in (1, 100, 1400, len(ps)):
        demux = PsDemuxer()
        out: list[AccessUnit] = []
        for i in range(0, len(ps), size):
            out += demux.feed(ps[i : i + size])
        out += demux.flush()
        assert [(u.pts, u.key, u.data) for u in out] == [(u.pts, u.key, u.data) for u in UNITS]
        assert demux.errors == 0 and demux.types == {0xE0: H264}


def test_the_psm_names_h265_and_an_unbounded_video_pes_runs_to_the_next_start_code() -> None:
    h265 = [AccessUnit(H265, 0, None, True, b"\x00\x00\x01\x40\x01" + b"\x33" * 50)]
    demux = PsDemuxer()
    assert demux.feed(ps_of(h265)) == [] and demux.flush()[0].stream_type == H265
    pes = b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01" + P_FRAME
    pack = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x00\x00\x03\xf8"
    out = PsDemuxer().feed(pack + pes + pack + pes + pack)
    assert [u.data for u in out] == [P_FRAME]  # the second is complete once a third starts


def test_rtp_losses_resync_at_the_next_pack_and_other_ssrcs_are_dropped() -> None:
    ps = ps_of(UNITS)
    packets = RtpPacketizer(77).packets_of(ps, 0)
    rtp = PsOverRtp(77)
    out: list[AccessUnit] = []
    for n, p in enumerate(packets):
        if n == 2:
            continue  # lost: part of the first keyframe
        out += rtp.packet(p)
    out += rtp.packet(RtpPacketizer(99).packets_of(ps, 0)[0]) + rtp.packet(b"junk")
    out += rtp.demux.flush()
    assert rtp.lost == 1 and rtp.foreign == 2
    assert IDR not in [u.data for u in out][:1]  # the damaged frame is not handed on
    assert [u.data for u in out][-3:] == [u.data for u in UNITS][-3:]


def test_segments_start_at_a_keyframe_and_cut_at_the_first_keyframe_past_their_length() -> None:
    from controller.gb28181.recorder import SegmentCutter

    cutter = SegmentCutter(segment_s=1.0)
    frames = [AccessUnit(H264, 3600 * n, None, n % 20 == 0, b"f") for n in range(2, 70)]
    cuts = [c for c in (cutter.add(f) for f in frames) if c is not None]
    last = cutter.flush()
    assert last is not None and cutter.flush() is None
    # nothing before the first keyframe (frame 20); 25 frames = 1 s, so cut at frame 60
    assert [(c.start_pts, c.end_pts, len(c.units)) for c in [*cuts, last]] == [
        (20 * 3600, 60 * 3600, 40),
        (60 * 3600, 70 * 3600, 10),
    ]
