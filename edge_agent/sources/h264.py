"""Just enough H.264 bitstream reading to notice a new sequence parameter set, without decoding.

A camera that changes resolution or profile mid-stream sends a new SPS in front of the next IDR.
Segments must not straddle that change (a player set up for one resolution chokes on the next),
so the segmenter cuts there. Reading the SPS NAL bytes is enough: any change in them is a new
stream configuration. Only keyframes are scanned, and only their first few kilobytes.
"""

from __future__ import annotations

_NAL_SPS = 7
# The SPS sits after the access unit delimiter and (x264's) SEI, well inside this many bytes.
_SCAN_BYTES = 8192


def _annexb_nals(data: bytes) -> list[bytes]:
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


def _avcc_nals(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split a length-prefixed (MP4 'avcC' style) byte string into NAL units."""
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


def find_sps(data: bytes) -> bytes | None:
    """The first SPS NAL unit carried in a packet's payload, or None if it carries none.

    `data` may be the whole packet or its first few kilobytes. Annex B and length-prefixed
    payloads are both understood; anything else yields None (no change detected, never an error).
    """
    head = data[:_SCAN_BYTES]
    nals = _annexb_nals(head) if is_annexb(head) else _avcc_nals(head)
    for nal in nals:
        if nal and nal[0] & 0x1F == _NAL_SPS:
            return nal
    return None
