"""MPEG-TS in, MPEG-PS (ISO 13818-1 program stream, GB/T 28181 appendix C) out. Pure, no I/O.

Why a packer of our own instead of FFmpeg's `mpeg`/`vob` muxer (through PyAV): that muxer
writes no program stream map (PSM), so a receiver cannot tell H.265 (stream_type 0x24) from
H.264 and GB receivers (WVP/ZLMediaKit, LiveGBS, the 公安 platforms) identify the codec only
from the PSM; it also buffers packets to fill 2 KiB DVD-style packs, which adds latency to a
live view. GB PS is simple: per frame a pack header, at each keyframe a system header and the
PSM, then PES packets of at most 64 KiB. The live feed and stored segments are MPEG-TS with
whole PES per frame, so the TS side only needs PID filtering and PES reassembly: no decoding,
no timestamp arithmetic beyond copying PTS/DTS (remux only).

Stream types in the PSM: H.264 0x1B, H.265 0x24, G.711 A-law 0x90 (GB's own), AAC 0x0F.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

H264, H265, G711A, AAC = 0x1B, 0x24, 0x90, 0x0F
VIDEO_TYPES = frozenset({H264, H265})
AUDIO_TYPES = frozenset({G711A, AAC})


def codec_of(stream_type: int) -> str:
    """FFmpeg's name of a PSM video stream type."""
    return "hevc" if stream_type == H265 else "h264"


MAX_PES_PAYLOAD = 65_000  # per PES packet; the length field is 16 bits
MAX_PES_BYTES = 8 * 1024 * 1024  # one access unit; beyond is a broken stream, dropped
_PES_HEAD = struct.Struct(">IH")  # start code 00 00 01 + stream id, packet length


class AccessUnit(NamedTuple):
    """One frame (video) or audio packet: its PSM stream type, 90 kHz times, ES bytes.
    A NamedTuple, immutable: a frozen dataclass took 2.2 µs to build (one per frame and
    stream on the cascade's thread), this 0.5 µs."""

    stream_type: int
    pts: int | None
    dts: int | None
    key: bool
    data: bytes


def is_keyframe(stream_type: int, data: bytes) -> bool:
    """An IDR/IRAP picture, or parameter sets (a device's keyframe). Looks no further than the
    first slice: parameter sets precede it in an access unit, and all slices of a picture are
    of one kind, so a frame's later bytes cannot change the answer (and a P-frame costs two
    `find`s instead of a scan of its first 4 KiB; run once per frame and stream)."""
    h265 = stream_type == H265
    i = data.find(b"\x00\x00\x01", 0, 4096)
    while 0 <= i < 4096 and i + 3 < len(data):
        if h265:
            t = (data[i + 3] >> 1) & 0x3F
            if 16 <= t <= 21 or 32 <= t <= 34:
                return True
            if t < 32:  # a slice of a non-IRAP picture
                return False
        else:
            t = data[i + 3] & 0x1F
            if t == 5 or t == 7:
                return True
            if 1 <= t <= 4:  # a slice of a non-IDR picture
                return False
        i = data.find(b"\x00\x00\x01", i + 3, 4096)
    return False


# -- program stream ------------------------------------------------------------------------------


def _crc32_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC = _crc32_table()


def crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ b) & 0xFF]
    return crc


def _ts_bytes(prefix: int, t: int) -> bytes:
    """A PES PTS/DTS field: 4-bit prefix, then 3 + 15 + 15 bits of `t`, each with a marker."""
    t &= 0x1FFFFFFFF
    return (
        (prefix << 36)
        | (t >> 30) << 33
        | ((t >> 15) & 0x7FFF) << 17
        | (t & 0x7FFF) << 1
        | 0x100010001
    ).to_bytes(5, "big")


_PACK_START = b"\x00\x00\x01\xba"
_PACK_MARKERS = 1 << 46 | 1 << 42 | 1 << 26 | 1 << 10 | 1  # '01', the SCR's and extension's


def pack_header(scr: int, mux_rate: int = 0x3FFF) -> bytes:
    """A pack header (MPEG-2): '01', the SCR in 3 + 15 + 15 bits with markers, extension 0,
    then the mux rate with two markers, five reserved bits and no stuffing. The SCR's six
    bytes are one 48-bit int (two machine digits, not the three of all ten bytes at once:
    built once per frame and stream on the cascade's thread)."""
    scr &= 0x1FFFFFFFF
    clock = _PACK_MARKERS | (scr >> 30) << 43 | (scr >> 15 & 0x7FFF) << 27 | (scr & 0x7FFF) << 11
    tail = _RATE_TAIL if mux_rate == 0x3FFF else _rate_tail(mux_rate)
    return _PACK_START + clock.to_bytes(6, "big") + tail


def _rate_tail(mux_rate: int) -> bytes:
    return ((mux_rate & 0x3FFFFF) << 10 | 0x3F8).to_bytes(4, "big")


_RATE_TAIL = _rate_tail(0x3FFF)


def system_header(video: bool, audio: bool, rate_bound: int = 0x3FFF) -> bytes:
    streams = b""
    if video:
        streams += b"\xe0\xe8\x00"  # P-STD buffer 2048 x 1 KiB
    if audio:
        streams += b"\xc0\xc0\x20"  # 32 x 128 B
    body = bytes(
        (
            0x80 | ((rate_bound >> 15) & 0x7F),
            (rate_bound >> 7) & 0xFF,
            ((rate_bound << 1) & 0xFE) | 1,
            (1 if audio else 0) << 2,
            0xE0 | (1 if video else 0),
            0x7F,
        )
    )
    body += streams
    return b"\x00\x00\x01\xbb" + struct.pack(">H", len(body)) + body


def stream_map(video_type: int | None, audio_type: int | None) -> bytes:
    entries = b""
    if video_type is not None:
        entries += bytes((video_type, 0xE0, 0, 0))
    if audio_type is not None:
        entries += bytes((audio_type, 0xC0, 0, 0))
    body = b"\xe0\xff\x00\x00" + struct.pack(">H", len(entries)) + entries
    head = b"\x00\x00\x01\xbc" + struct.pack(">H", len(body) + 4) + body
    return head + struct.pack(">I", crc32_mpeg(head))


def pes_packets(stream_id: int, pts: int | None, dts: int | None, data: bytes) -> list[bytes]:
    """The PES packets of one access unit as pieces to join (header, optional fields, data:
    the data is copied once, by the caller's join)."""
    out: list[bytes] = []
    for i in range(0, max(len(data), 1), MAX_PES_PAYLOAD):
        chunk = data if len(data) <= MAX_PES_PAYLOAD else data[i : i + MAX_PES_PAYLOAD]
        if i == 0 and pts is not None:
            if dts is not None and dts != pts:
                opt = b"\x80\xc0\x0a" + _ts_bytes(3, pts) + _ts_bytes(1, dts)
            else:
                opt = b"\x80\x80\x05" + _ts_bytes(2, pts)
        else:
            opt = b"\x80\x00\x00"
        out += (_PES_HEAD.pack(0x100 | stream_id, len(opt) + len(chunk)), opt, chunk)
    return out


class PsPacker:
    """Access units in, one PS pack per unit out (system header + PSM before keyframes)."""

    def __init__(self) -> None:
        self.video_type: int | None = None
        self.audio_type: int | None = None
        self._started = False
        self._key_heads: dict[tuple[int | None, int | None], bytes] = {}

    def _key_head(self) -> bytes:
        """System header + PSM for the current types (built once: its CRC is a Python loop)."""
        types = (self.video_type, self.audio_type)
        head = self._key_heads.get(types)
        if head is None:
            head = system_header(True, self.audio_type is not None) + stream_map(*types)
            self._key_heads[types] = head
        return head

    def pack(self, au: AccessUnit, audio_hint: int | None = None) -> bytes | None:
        """The PS bytes of `au`, or None: video before the first keyframe, unknown types.
        `audio_hint`: the audio type the source announced, so the first PSM lists it."""
        if audio_hint is not None and self.audio_type is None:
            self.audio_type = audio_hint
        stream_type, pts, dts, key, data = au
        video = stream_type in VIDEO_TYPES
        if video:
            if not self._started and not key:
                return None
            self._started = True
            self.video_type = stream_type
        elif stream_type in AUDIO_TYPES:
            if not self._started:
                return None  # start on a video keyframe: a receiver needs the PSM first
            self.audio_type = stream_type
        else:
            return None
        head = pack_header(dts if dts is not None else (pts or 0))
        if video and key:
            head += self._key_head()
        if pts is not None and len(data) <= MAX_PES_PAYLOAD:  # one PES: most frames
            if dts is not None and dts != pts:
                opt = b"\x80\xc0\x0a" + _ts_bytes(3, pts) + _ts_bytes(1, dts)
            else:
                opt = b"\x80\x80\x05" + _ts_bytes(2, pts)
            pes = _PES_HEAD.pack(0x1E0 if video else 0x1C0, len(opt) + len(data))
            return b"".join((head, pes, opt, data))
        return b"".join([head, *pes_packets(0xE0 if video else 0xC0, pts, dts, data)])
