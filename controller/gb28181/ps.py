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
from collections.abc import Iterator
from dataclasses import dataclass, field

TS_PACKET = 188
H264, H265, G711A, AAC = 0x1B, 0x24, 0x90, 0x0F
VIDEO_TYPES = frozenset({H264, H265})
AUDIO_TYPES = frozenset({G711A, AAC})


def codec_of(stream_type: int) -> str:
    """FFmpeg's name of a PSM video stream type."""
    return "hevc" if stream_type == H265 else "h264"


MAX_PES_PAYLOAD = 65_000  # per PES packet; the length field is 16 bits
MAX_PES_BYTES = 8 * 1024 * 1024  # one access unit; beyond is a broken stream, dropped


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One frame (video) or audio packet: its PSM stream type, 90 kHz times, ES bytes."""

    stream_type: int
    pts: int | None
    dts: int | None
    key: bool
    data: bytes


@dataclass(slots=True)
class _Pending:
    stream_type: int
    random_access: bool
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class TsDemuxer:
    """Feed MPEG-TS bytes (any chunking), get access units. Unknown streams are skipped."""

    def __init__(self) -> None:
        self._buf = b""
        self._pmt_pids: set[int] = set()
        self._types: dict[int, int] = {}  # pid -> stream type
        self._pending: dict[int, _Pending] = {}
        self.errors = 0  # packets without sync or with a broken PES header

    def feed(self, data: bytes) -> list[AccessUnit]:
        buf = self._buf + data if self._buf else data
        out: list[AccessUnit] = []
        i, n = 0, len(buf)
        while n - i >= TS_PACKET:
            if buf[i] != 0x47:
                nxt = buf.find(b"\x47", i + 1)
                self.errors += 1
                if nxt < 0:
                    i = n
                    break
                i = nxt
                continue
            self._packet(buf[i : i + TS_PACKET], out)
            i += TS_PACKET
        self._buf = buf[i:]
        return out

    @property
    def audio_type(self) -> int | None:
        """The audio stream type the PMT announced (None: video only, or no PMT yet)."""
        return next((t for t in self._types.values() if t in AUDIO_TYPES), None)

    def flush(self) -> list[AccessUnit]:
        """Complete every pending PES now (a chunk of the live feed ends on a whole frame)."""
        out: list[AccessUnit] = []
        for pid in list(self._pending):
            self._complete(pid, out)
        return out

    def _packet(self, pkt: bytes, out: list[AccessUnit]) -> None:
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        start = bool(pkt[1] & 0x40)
        afc = (pkt[3] >> 4) & 0x3
        offset, rai = 4, False
        if afc & 0x2:
            alen = pkt[4]
            rai = alen > 0 and bool(pkt[5] & 0x40)
            offset = 5 + alen
        if not afc & 0x1 or offset >= TS_PACKET:
            return
        payload = pkt[offset:]
        if pid == 0:
            if start:
                self._pat(payload)
        elif pid in self._pmt_pids:
            if start:
                self._pmt(payload)
        elif pid in self._types:
            if start:
                self._complete(pid, out)
                self._pending[pid] = _Pending(self._types[pid], rai)
            pend = self._pending.get(pid)
            if pend is not None:
                pend.parts.append(payload)
                pend.size += len(payload)
                if pend.size > MAX_PES_BYTES:
                    del self._pending[pid]
                    self.errors += 1

    def _section(self, payload: bytes) -> bytes:
        pointer = payload[0]
        sec = payload[1 + pointer :]
        if len(sec) < 3:
            return b""
        length = ((sec[1] & 0x0F) << 8) | sec[2]
        return sec[: 3 + length]

    def _pat(self, payload: bytes) -> None:
        sec = self._section(payload)
        for j in range(8, len(sec) - 4, 4):
            program = (sec[j] << 8) | sec[j + 1]
            if program != 0:
                self._pmt_pids.add(((sec[j + 2] & 0x1F) << 8) | sec[j + 3])

    def _pmt(self, payload: bytes) -> None:
        sec = self._section(payload)
        if len(sec) < 12:
            return
        info = ((sec[10] & 0x0F) << 8) | sec[11]
        j = 12 + info
        while j + 5 <= len(sec) - 4:
            stype, pid = sec[j], ((sec[j + 1] & 0x1F) << 8) | sec[j + 2]
            es_len = ((sec[j + 3] & 0x0F) << 8) | sec[j + 4]
            if stype in VIDEO_TYPES or stype in AUDIO_TYPES:
                self._types[pid] = stype
            j += 5 + es_len

    def _complete(self, pid: int, out: list[AccessUnit]) -> None:
        pend = self._pending.pop(pid, None)
        if pend is None:
            return
        pes = b"".join(pend.parts)
        if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
            self.errors += 1
            return
        flags, hlen = pes[7], pes[8]
        pts = _read_ts(pes, 9) if flags & 0x80 and len(pes) >= 14 else None
        dts = _read_ts(pes, 14) if flags & 0x40 and len(pes) >= 19 else None
        data = pes[9 + hlen :]
        declared = (pes[4] << 8) | pes[5]
        if declared:
            data = data[: max(0, declared - 3 - hlen)]
        key = pend.random_access or (
            pend.stream_type in VIDEO_TYPES and is_keyframe(pend.stream_type, data)
        )
        out.append(AccessUnit(pend.stream_type, pts, dts, key, data))


def _read_ts(b: bytes, i: int) -> int:
    return (
        ((b[i] >> 1) & 0x07) << 30
        | b[i + 1] << 22
        | ((b[i + 2] >> 1) & 0x7F) << 15
        | b[i + 3] << 7
        | (b[i + 4] >> 1) & 0x7F
    )


def nal_types(stream_type: int, data: bytes, limit: int = 4096) -> Iterator[int]:
    """NAL unit types in the first `limit` bytes of an Annex B access unit."""
    i = data.find(b"\x00\x00\x01", 0, limit)
    while 0 <= i < limit and i + 3 < len(data):
        b = data[i + 3]
        yield (b >> 1) & 0x3F if stream_type == H265 else b & 0x1F
        i = data.find(b"\x00\x00\x01", i + 3, limit)


def is_keyframe(stream_type: int, data: bytes) -> bool:
    for t in nal_types(stream_type, data):
        if stream_type == H264 and t in (5, 7):
            return True
        if stream_type == H265 and (16 <= t <= 21 or 32 <= t <= 34):
            return True
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
    t &= 0x1FFFFFFFF
    return bytes(
        (
            (prefix << 4) | ((t >> 29) & 0x0E) | 1,
            (t >> 22) & 0xFF,
            ((t >> 14) & 0xFE) | 1,
            (t >> 7) & 0xFF,
            ((t << 1) & 0xFE) | 1,
        )
    )


def pack_header(scr: int, mux_rate: int = 0x3FFF) -> bytes:
    scr &= 0x1FFFFFFFF
    return b"\x00\x00\x01\xba" + bytes(
        (
            0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
            (scr >> 20) & 0xFF,
            0x04 | ((scr >> 12) & 0xF8) | ((scr >> 13) & 0x03),
            (scr >> 5) & 0xFF,
            0x04 | ((scr << 3) & 0xF8),
            0x01,
            (mux_rate >> 14) & 0xFF,
            (mux_rate >> 6) & 0xFF,
            ((mux_rate << 2) & 0xFC) | 0x03,
            0xF8,
        )
    )


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
    out: list[bytes] = []
    first = True
    for i in range(0, max(len(data), 1), MAX_PES_PAYLOAD):
        chunk = data[i : i + MAX_PES_PAYLOAD]
        if first and pts is not None:
            if dts is not None and dts != pts:
                opt = b"\x80\xc0\x0a" + _ts_bytes(3, pts) + _ts_bytes(1, dts)
            else:
                opt = b"\x80\x80\x05" + _ts_bytes(2, pts)
        else:
            opt = b"\x80\x00\x00"
        first = False
        head = b"\x00\x00\x01" + bytes((stream_id,)) + struct.pack(">H", len(opt) + len(chunk))
        out.append(head + opt + chunk)
    return out


class PsPacker:
    """Access units in, one PS pack per unit out (system header + PSM before keyframes)."""

    def __init__(self) -> None:
        self.video_type: int | None = None
        self.audio_type: int | None = None
        self._started = False

    def pack(self, au: AccessUnit, audio_hint: int | None = None) -> bytes | None:
        """The PS bytes of `au`, or None: video before the first keyframe, unknown types.
        `audio_hint`: the audio type the source announced, so the first PSM lists it."""
        if audio_hint is not None and self.audio_type is None:
            self.audio_type = audio_hint
        video = au.stream_type in VIDEO_TYPES
        if video:
            if not self._started and not au.key:
                return None
            self._started = True
            self.video_type = au.stream_type
        elif au.stream_type in AUDIO_TYPES:
            if not self._started:
                return None  # start on a video keyframe: a receiver needs the PSM first
            self.audio_type = au.stream_type
        else:
            return None
        scr = au.dts if au.dts is not None else (au.pts or 0)
        parts = [pack_header(scr)]
        if video and au.key:
            parts.append(system_header(True, self.audio_type is not None))
            parts.append(stream_map(self.video_type, self.audio_type))
        parts += pes_packets(0xE0 if video else 0xC0, au.pts, au.dts, au.data)
        return b"".join(parts)
