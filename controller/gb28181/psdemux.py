"""PS over RTP in (GB/T 28181 device media): RTP payloads -> MPEG-PS -> access units. Pure.

The inverse of ps.py + rtp.py, for streams devices send: RTP payloads are a PS byte stream cut
anywhere (no per-frame alignment is assumed); the PS is scanned for start codes: pack headers
(MPEG-2 and MPEG-1), system headers, padding and private streams are skipped by their
lengths, the PSM (when the device sends one) names each elementary stream's type, and video
(0xE0-0xEF) and audio (0xC0-0xDF) PES are joined into access units: a PES carrying a PTS
starts a new unit. A video PES of length 0 (unbounded, which some devices send) runs to the
next PS start code: 00 00 01 followed by a byte >= 0xB9 cannot begin an H.264/H.265 NAL unit
(their first bit is forbidden). Without a PSM, video is taken as H.264 and audio as G.711
A-law (GB's defaults). Lost RTP packets (a sequence gap) drop the unit being built and resync
at the next pack header; packets of another SSRC are not ours and are dropped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from controller.gb28181.ps import G711A, H264, MAX_PES_BYTES, AccessUnit, is_keyframe
from controller.gb28181.rtp import parse_rtp

PACK, SYSTEM, PSM, END = 0xBA, 0xBB, 0xBC, 0xB9
MAX_BUFFER = 4 * 1024 * 1024  # PS bytes held without a complete unit: beyond, resync


def _pts(b: bytes, i: int) -> int:
    return (
        ((b[i] >> 1) & 0x07) << 30
        | b[i + 1] << 22
        | (b[i + 2] >> 1) << 15
        | b[i + 3] << 7
        | b[i + 4] >> 1
    )


@dataclass(slots=True)
class _Unit:
    stream_type: int
    pts: int | None
    dts: int | None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class PsDemuxer:
    """Feed PS bytes (any chunking), get access units."""

    def __init__(self) -> None:
        self._buf = b""
        self.types: dict[int, int] = {}  # stream id -> stream type (from the PSM)
        self._units: dict[int, _Unit] = {}
        self.errors = 0

    def resync(self) -> None:
        """Bytes were lost: drop what was being built; start again at the next pack."""
        self._units.clear()
        i = self._buf.find(b"\x00\x00\x01\xba", 1)
        self._buf = self._buf[i:] if i >= 0 else b""
        self.errors += 1

    def feed(self, data: bytes) -> list[AccessUnit]:
        buf = self._buf + data if self._buf else data
        out: list[AccessUnit] = []
        i, n = 0, len(buf)
        while True:
            j = buf.find(b"\x00\x00\x01", i)
            if j < 0 or j + 4 > n:
                i = j if j >= 0 else max(i, n - 3, 0)  # keep a start code's first bytes
                break
            code = buf[j + 3]
            if code < END:  # inside ES data we could not place: skip it
                i = j + 3
                continue
            used = self._element(buf, j, code, out)
            if used == 0:  # incomplete: wait for more bytes
                i = j
                break
            i = j + used
        self._buf = buf[i:]
        if len(self._buf) > MAX_BUFFER:
            self._buf = b""
            self.errors += 1
        return out

    def flush(self) -> list[AccessUnit]:
        out = [self._emit(u) for u in self._units.values() if u.parts]
        self._units.clear()
        return out

    def _element(self, b: bytes, j: int, code: int, out: list[AccessUnit]) -> int:
        """Bytes taken by the element at j (0: not all here yet)."""
        n = len(b)
        if code == PACK:
            if j + 14 > n:
                return 0
            if b[j + 4] >> 6 == 1:  # MPEG-2: 14 bytes and stuffing
                return 14 + (b[j + 13] & 0x07) if j + 14 <= n else 0
            return 12  # MPEG-1 pack header
        if code == END:
            return 4
        if j + 6 > n:
            return 0
        length = struct.unpack_from(">H", b, j + 4)[0]
        video = 0xE0 <= code <= 0xEF
        if length == 0 and video:
            k = j + 6
            while True:
                k = b.find(b"\x00\x00\x01", k)
                if k < 0 or k + 4 > n:
                    return 0
                if b[k + 3] >= END:
                    break
                k += 3
            end = k
        else:
            end = j + 6 + length
            if end > n:
                return 0
        if code == PSM:
            self._psm(b[j:end])
        elif video or 0xC0 <= code <= 0xDF:
            self._pes(code, b[j:end], out)
        return end - j

    def _psm(self, sec: bytes) -> None:
        if len(sec) < 12:
            return
        info = struct.unpack_from(">H", sec, 8)[0]
        k = 10 + info
        if k + 2 > len(sec):
            return
        es_end = min(k + 2 + struct.unpack_from(">H", sec, k)[0], len(sec) - 4)
        k += 2
        while k + 4 <= es_end:
            stype, sid, es_info = sec[k], sec[k + 1], struct.unpack_from(">H", sec, k + 2)[0]
            self.types[sid] = stype
            k += 4 + es_info

    def _pes(self, sid: int, pes: bytes, out: list[AccessUnit]) -> None:
        if len(pes) < 9 or pes[6] >> 6 != 2:
            self.errors += 1  # not an MPEG-2 PES header
            return
        flags, hlen = pes[7], pes[8]
        start = 9 + hlen
        if start > len(pes):
            self.errors += 1
            return
        pts = _pts(pes, 9) if flags & 0x80 and hlen >= 5 else None
        dts = _pts(pes, 14) if flags & 0xC0 == 0xC0 and hlen >= 10 else None
        video = sid >= 0xE0
        stype = self.types.get(sid, H264 if video else G711A)
        unit = self._units.get(sid)
        if pts is not None or unit is None:
            if unit is not None and unit.parts:
                out.append(self._emit(unit))
            unit = self._units[sid] = _Unit(stype, pts, dts)
        payload = pes[start:]
        unit.parts.append(payload)
        unit.size += len(payload)
        if unit.size > MAX_PES_BYTES:
            del self._units[sid]
            self.errors += 1

    def _emit(self, u: _Unit) -> AccessUnit:
        data = b"".join(u.parts)
        key = is_keyframe(u.stream_type, data) if u.stream_type in (H264, 0x24) else True
        return AccessUnit(u.stream_type, u.pts, u.dts, key, data)


class PsOverRtp:
    """RTP packets of one stream (its SSRC when known) -> access units."""

    def __init__(self, ssrc: int | None = None) -> None:
        self.ssrc = ssrc
        self.demux = PsDemuxer()
        self.next_seq: int | None = None
        self.packets = 0
        self.lost = 0
        self.foreign = 0  # not RTP, or another SSRC

    def packet(self, data: bytes) -> list[AccessUnit]:
        try:
            _pt, seq, _ts, ssrc, payload = parse_rtp(data)
        except ValueError:
            self.foreign += 1
            return []
        if self.ssrc is not None and ssrc != self.ssrc:
            self.foreign += 1
            return []
        self.packets += 1
        if self.next_seq is not None and seq != self.next_seq:
            gap = (seq - self.next_seq) & 0xFFFF
            if gap < 0x8000:  # a loss (late or repeated packets are older: dropped)
                self.lost += gap
                self.demux.resync()
            else:
                return []
        self.next_seq = (seq + 1) & 0xFFFF
        return self.demux.feed(payload)
