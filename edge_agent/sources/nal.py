"""Just enough H.264/H.265 bitstream reading to remux without decoding: NAL units, their types,
parameter sets.

Why: a segment must decode on its own, so every segment's first keyframe must carry the
stream's parameter sets (SPS/PPS for H.264, VPS/SPS/PPS for H.265). Many cameras repeat them
in front of every keyframe; others send them once (in the SDP, or with the first keyframe of a
recording). `missing_parameter_sets` says what to put in front of a keyframe that lacks them.
A new SPS is also how a camera announces a new resolution or profile: the segmenter cuts there.

Everything here is pure, works on the first few kilobytes of a packet, and never raises on
garbage (a corrupt NAL yields "nothing found", never an error).
"""

from __future__ import annotations

from collections.abc import Sequence

# The SPS sits after the access unit delimiter and SEI, well inside this many bytes.
SCAN_BYTES = 8192
START = b"\x00\x00\x00\x01"

H264_SPS, H264_PPS = 7, 8
HEVC_VPS, HEVC_SPS, HEVC_PPS = 32, 33, 34
_SPS = {"h264": H264_SPS, "hevc": HEVC_SPS}
# The parameter sets a keyframe needs in front of it, in the order they must come.
_NEEDED: dict[str, tuple[int, ...]] = {
    "h264": (H264_SPS, H264_PPS),
    "hevc": (HEVC_VPS, HEVC_SPS, HEVC_PPS),
}
SUPPORTED_CODECS = frozenset(_SPS)


def nal_type(codec: str, nal: bytes) -> int | None:
    """The NAL unit type (H.264: low 5 bits of byte 0; H.265: bits 1-6 of byte 0)."""
    if not nal:
        return None
    if codec == "hevc":
        return (nal[0] >> 1) & 0x3F
    return nal[0] & 0x1F


def annexb_nals(data: bytes) -> list[bytes]:
    """Split an Annex B byte string (00 00 01 / 00 00 00 01 start codes) into NAL units."""
    nals: list[bytes] = []
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, begin in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        nal = data[begin:end]
        # A 4-byte start code leaves one zero byte at the end of the previous NAL.
        if n + 1 < len(starts) and nal.endswith(b"\x00"):
            nal = nal[:-1]
        if nal:
            nals.append(nal)
    return nals


def length_prefixed_nals(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split a length-prefixed (MP4 'avcC'/'hvcC' style) byte string into NAL units."""
    nals: list[bytes] = []
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if size <= 0:
            break
        nals.append(data[pos : pos + size])  # may be cut short by the scan window
        pos += size
    return nals


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")


def nals_of(data: bytes) -> list[bytes]:
    """The NAL units of a payload in either framing."""
    return annexb_nals(data) if is_annexb(data) else length_prefixed_nals(data)


def find_sps(data: bytes, codec: str = "h264") -> bytes | None:
    """The first SPS NAL unit carried in a packet's payload, or None if it carries none.

    `data` may be the whole packet or its first few kilobytes. Annex B and length-prefixed
    payloads are both understood; anything else yields None (no change detected, never an error).
    """
    wanted = _SPS.get(codec)
    if wanted is None:
        return None
    for nal in nals_of(data[:SCAN_BYTES]):
        if nal_type(codec, nal) == wanted:
            return nal
    return None


def parameter_sets(codec: str, extradata: bytes | None) -> dict[int, bytes]:
    """The parameter sets in a stream's Annex B extradata (RTSP's sprop-parameter-sets, an
    MPEG-TS stream's first headers), by NAL type. MP4-style extradata (avcC/hvcC) yields {}:
    FFmpeg's MPEG-TS muxer already puts those in front of each keyframe itself."""
    needed = _NEEDED.get(codec)
    if not extradata or needed is None or not is_annexb(extradata):
        return {}
    found: dict[int, bytes] = {}
    for nal in annexb_nals(extradata):
        kind = nal_type(codec, nal)
        if kind in needed and kind not in found:
            found[kind] = nal
    return found


def missing_parameter_sets(codec: str, head: bytes, known: dict[int, bytes]) -> bytes:
    """The Annex B bytes to put in front of a keyframe whose first bytes are `head` so that it
    decodes on its own: the `known` parameter sets it does not carry itself, in order.

    Empty when it carries them all, when it is not Annex B (the muxer's own filter handles
    MP4-style payloads), or when nothing is known to add.
    """
    needed = _NEEDED.get(codec)
    if needed is None or not known or not is_annexb(head):
        return b""
    carried = {nal_type(codec, nal) for nal in annexb_nals(head[:SCAN_BYTES])}
    missing: Sequence[int] = [k for k in needed if k not in carried and k in known]
    return b"".join(START + known[k] for k in missing)


# Where a NAL of the other codec starts, as 4 bytes after a start code prefix (00 00 01).
# An H.265 VPS (40 01) opens every H.265 keyframe; as H.264 it is type 0, which no encoder
# sends. An H.264 SPS (67/27/47) opens every H.264 keyframe; as H.265 it is type 51
# (unspecified) or a NAL with a non-zero layer id, which base-layer streams never carry.
_OTHER = {
    "h264": ("hevc", (b"\x00\x00\x01\x40\x01",)),
    "hevc": ("h264", (b"\x00\x00\x01\x67", b"\x00\x00\x01\x27", b"\x00\x00\x01\x47")),
}


def switched_codec(codec: str, data: bytes) -> tuple[str, int] | None:
    """(the other codec, where its first NAL starts) if a packet plainly carries a keyframe of
    the other codec, else None.

    A recording that changes codec mid-way (an NVR file spliced across a camera's H.264 ->
    H.265 reconfiguration) would otherwise be remuxed under the old codec's headers and decode
    as garbage. FFmpeg's parser for the old codec may glue the new codec's first keyframe onto
    the old codec's last frame, so the whole packet is searched, not only its start.
    """
    other = _OTHER.get(codec)
    if other is None or not is_annexb(data):
        return None
    name, markers = other
    found = [i for i in (data.find(m) for m in markers) if i != -1]
    if not found:
        return None
    at = min(found)
    return name, at - 1 if at > 0 and data[at - 1] == 0 else at
