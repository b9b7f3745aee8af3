"""H.264/H.265 NAL reading: new-SPS spotting for both codecs, parameter sets for every segment."""

from __future__ import annotations

import pytest

from edge_agent.sources.nal import (
    START,
    find_sps,
    missing_parameter_sets,
    nal_type,
    parameter_sets,
    switched_codec,
)

# H.265 NAL headers are two bytes: type in bits 1-6 of the first.
VPS = b"\x40\x01\x0c\x01\xff\xff"
SPS = b"\x42\x01\x01\x01\x60\x00"
PPS = b"\x44\x01\xc1\x72"
IDR = b"\x26\x01\xaf\x00\x11"  # IDR_W_RADL (19)
AUD = b"\x46\x01\x10"  # 35
H264_SPS = b"\x67\x42\xc0\x15\xda\x05\x06"
H264_PPS = b"\x68\xce\x3c\x80"
H264_IDR = b"\x65\x88\x84\x00\x33"


def annexb(*nals: bytes) -> bytes:
    return b"".join(START + n for n in nals)


def test_hevc_nal_types() -> None:
    assert [nal_type("hevc", n) for n in (VPS, SPS, PPS, IDR, AUD)] == [32, 33, 34, 19, 35]
    assert nal_type("h264", H264_SPS) == 7
    assert nal_type("hevc", b"") is None


def test_find_sps_hevc_in_annexb_and_length_prefixed() -> None:
    assert find_sps(annexb(AUD, VPS, SPS, PPS, IDR), "hevc") == SPS
    prefixed = b"".join(len(n).to_bytes(4, "big") + n for n in (VPS, SPS, PPS, IDR))
    assert find_sps(prefixed, "hevc") == SPS
    # The H.264 reading of an H.265 keyframe finds no SPS (0x42 & 0x1f = 2), and vice versa.
    assert find_sps(annexb(VPS, SPS, PPS, IDR), "h264") is None
    assert find_sps(annexb(H264_SPS, H264_PPS, H264_IDR), "hevc") is None
    assert find_sps(annexb(H264_SPS, H264_PPS, H264_IDR)) == H264_SPS


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x01",
        b"\x00\x00\x01\xff",
        b"\xff" * 64,
        START + b"\x7e" * 3000,  # a corrupt NAL (forbidden bit set, type 63)
        (2**31).to_bytes(4, "big") + IDR,  # a length prefix far past the end
    ],
)
def test_garbage_yields_nothing_and_never_raises(data: bytes) -> None:
    assert find_sps(data, "hevc") is None
    assert missing_parameter_sets("hevc", data, {33: SPS}) in (b"", START + SPS)
    assert parameter_sets("hevc", data) == {}


def test_parameter_sets_from_annexb_extradata_only() -> None:
    assert parameter_sets("hevc", annexb(VPS, SPS, PPS)) == {32: VPS, 33: SPS, 34: PPS}
    assert parameter_sets("h264", annexb(H264_SPS, H264_PPS)) == {7: H264_SPS, 8: H264_PPS}
    assert parameter_sets("hevc", b"\x01\x01\x60\x00") == {}  # hvcC: the muxer's filter adds them
    assert parameter_sets("mjpeg", annexb(SPS)) == {}
    assert parameter_sets("hevc", None) == {}


def test_missing_parameter_sets_go_in_front_of_a_bare_keyframe_in_order() -> None:
    known = parameter_sets("hevc", annexb(VPS, SPS, PPS))
    assert missing_parameter_sets("hevc", annexb(AUD, IDR), known) == annexb(VPS, SPS, PPS)
    assert missing_parameter_sets("hevc", annexb(VPS, SPS, PPS, IDR), known) == b""
    assert missing_parameter_sets("hevc", annexb(PPS, IDR), known) == annexb(VPS, SPS)
    h264 = parameter_sets("h264", annexb(H264_SPS, H264_PPS))
    assert missing_parameter_sets("h264", annexb(H264_IDR), h264) == annexb(H264_SPS, H264_PPS)
    assert missing_parameter_sets("h264", annexb(H264_IDR), {}) == b""
    prefixed = len(IDR).to_bytes(4, "big") + IDR
    assert missing_parameter_sets("hevc", prefixed, known) == b""


def test_a_switch_of_codec_is_spotted_anywhere_in_a_packet() -> None:
    assert switched_codec("h264", annexb(VPS, SPS, PPS, IDR)) == ("hevc", 0)
    tail = annexb(b"\x09\xf0", H264_IDR)  # the old codec's last frame, then the new keyframe
    assert switched_codec("h264", tail + annexb(AUD, VPS, SPS, PPS, IDR)) == (
        "hevc",
        len(tail) + len(START + AUD),
    )
    assert switched_codec("h264", annexb(H264_SPS, H264_PPS, H264_IDR)) is None
    assert switched_codec("hevc", annexb(AUD, H264_SPS, H264_PPS, H264_IDR)) == (
        "h264",
        len(START + AUD),
    )
    assert switched_codec("hevc", annexb(AUD, VPS, SPS, PPS, IDR)) is None
    for junk in (b"", b"\xff" * 8, START + b"\x7e\x01", START + b"\x40"):
        assert switched_codec("h264", junk) is None
        assert switched_codec("hevc", junk) is None
