"""MPEG-TS in, access units out: the cascade's source side (live feed, stored segments). Pure.

The live feed and stored segments are MPEG-TS with one whole PES per frame, so only PID
filtering and PES reassembly are needed: no decoding, PTS/DTS copied (remux only).

Why runs: handled one 188-byte packet at a time in Python, the demux was 70 % of the cascade's
whole pipeline (9.6 of 13.6 µs per frame at 0.36 Mbit/s; docs/benchmarks.md, "GB/T 28181
cascade"). A frame is one packet that starts its PES (often with an adaptation field: PCR,
random access), a run of plain packets (the same PID, payload only, 184 bytes each) and a
last one padded by an adaptation field. A compiled pattern per PID (`plain_runs`) finds where
such a run ends in one C call, and one `struct` call slices its payloads; every other packet
takes the per-packet path. Both give the same units (tests/unit/test_gb28181_tsdemux.py
checks that against a packet-at-a-time reference on random streams and chunkings).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from controller.gb28181.ps import (
    AUDIO_TYPES,
    MAX_PES_BYTES,
    VIDEO_TYPES,
    AccessUnit,
    is_keyframe,
)

TS_PACKET = 188
PLAIN_PAYLOAD = TS_PACKET - 4
_SYNC = b"\x47"
# byte 3 of a plain packet: payload only (adaptation_field_control 01), any scrambling bits
_PLAIN_B3 = b"[" + b"".join(re.escape(bytes((b,))) for b in range(256) if b & 0x30 == 0x10) + b"]"
_PAYLOAD_B3 = b"[" + b"".join(re.escape(bytes((b,))) for b in range(256) if b & 0x10) + b"]"
_PADDED_B3 = (  # adaptation field and payload
    b"[" + b"".join(re.escape(bytes((b,))) for b in range(256) if b & 0x30 == 0x30) + b"]"
)
# the payloads of k plain packets in one C call: _RUNS[k].unpack_from(buf, offset)
MAX_RUN = 64
_RUNS = [struct.Struct("4x184s" * k) for k in range(MAX_RUN + 1)]


def plain_runs(pid: int) -> re.Pattern[bytes]:
    """A pattern matching a run of plain continuation packets of `pid` (sync byte, no error,
    start or priority bit, that PID, payload only): `match(buf, i).end()` is where it stops.
    `.{184}` under DOTALL is a jump in the regex engine, not a loop."""
    head = re.escape(bytes((0x47, pid >> 8, pid & 0xFF)))
    return re.compile(b"(?:" + head + _PLAIN_B3 + b".{184})*", re.DOTALL)


def frame_packets(pid: int) -> re.Pattern[bytes]:
    """A pattern matching how a muxer lays out a PES of `pid`: its start packet (start bit,
    no error or priority bit, payload with or without an adaptation field), a run of plain
    packets (group 1) and a packet padded by an adaptation field that ends it (group 2,
    optional): one C call instead of a Python call per packet for the first and last."""
    hi, lo = pid >> 8, pid & 0xFF
    first = re.escape(bytes((0x47, 0x40 | hi, lo))) + _PAYLOAD_B3 + b".{184}"
    plain = re.escape(bytes((0x47, hi, lo))) + _PLAIN_B3 + b".{184}"
    last = re.escape(bytes((0x47, hi, lo))) + _PADDED_B3 + b".{184}"
    return re.compile(first + b"((?:" + plain + b")*)(" + last + b")?", re.DOTALL)


def run_payloads(buf: bytes, i: int, run: int) -> list[bytes]:
    """The payloads of `run` plain packets from offset `i`."""
    out: list[bytes] = []
    while run > MAX_RUN:
        out += _RUNS[MAX_RUN].unpack_from(buf, i)
        i, run = i + MAX_RUN * TS_PACKET, run - MAX_RUN
    out += _RUNS[run].unpack_from(buf, i)
    return out


@dataclass(slots=True)
class _Pending:
    stream_type: int
    random_access: bool
    parts: list[bytes]
    size: int


class TsDemuxer:
    """Feed MPEG-TS bytes (any chunking), get access units. Unknown streams are skipped."""

    def __init__(self) -> None:
        self._buf = b""
        self._pmt_pids: set[int] = set()
        self._types: dict[int, int] = {}  # pid -> stream type
        self._runs: dict[int, re.Pattern[bytes]] = {}  # pid -> plain_runs(pid)
        self._frames: dict[int, re.Pattern[bytes]] = {}  # pid -> frame_packets(pid)
        self._psi: dict[int, bytes] = {}  # pid -> the PAT/PMT payload last parsed
        self._pending: dict[int, _Pending] = {}
        self.errors = 0  # packets without sync or with a broken PES header

    def feed(self, data: bytes, whole: bool = False) -> list[AccessUnit]:
        """The units completed by `data`. `whole`: `data` ends where a frame ends (a live
        chunk), so this is `feed(data) + flush()`, except that a PES found whole at the end
        of `data` with nothing else pending becomes a unit at once, never held as pending."""
        buf = self._buf + data if self._buf else data
        out: list[AccessUnit] = []
        i, n = 0, len(buf)
        frames = self._frames
        while n - i >= TS_PACKET:
            if buf[i] != 0x47:
                nxt = buf.find(_SYNC, i + 1)
                self.errors += 1
                if nxt < 0:
                    i = n
                    break
                i = nxt
                continue
            # A whole PES in the buffer: its first packet, plain run and last packet in one
            # match. Never with one packet in hand: packet-at-a-time is the reference path.
            if n - i >= 2 * TS_PACKET and buf[i + 1] & 0x40:
                pid = ((buf[i + 1] & 0x1F) << 8) | buf[i + 2]
                frame = frames.get(pid)
                if frame is not None:
                    m = frame.match(buf, i)
                    if m is not None and self._frame(buf, i, m, pid, out, whole and m.end() == n):
                        i = m.end()
                        continue
            pid = self._packet(buf, i, out)
            i += TS_PACKET
            # a cheap look first: is the next packet plain at all (payload only)?
            if pid >= 0 and n - i >= TS_PACKET and buf[i + 3] & 0x30 == 0x10:
                m = self._runs[pid].match(buf, i)  # always matches, maybe empty
                run = (m.end() - i) // TS_PACKET if m else 0
                if run:
                    pend = self._pending[pid]
                    pend.parts += run_payloads(buf, i, run)
                    pend.size += run * PLAIN_PAYLOAD
                    i += run * TS_PACKET
                    self._check_size(pid, pend)
        self._buf = buf[i:]
        if whole and self._pending:
            out += self.flush()
        return out

    def _frame(
        self, buf: bytes, i: int, m: re.Match[bytes], pid: int, out: list[AccessUnit], last: bool
    ) -> bool:
        """Take a PES start packet, the plain run after it and the padded packet that ends
        it (as `frame_packets` matched them); False (nothing taken) when the start packet
        carries no payload, which the per-packet path handles."""
        offset, rai = i + 4, False
        if buf[i + 3] & 0x20:
            alen = buf[i + 4]
            rai = alen > 0 and buf[i + 5] & 0x40 != 0
            offset = i + 5 + alen
        end = i + TS_PACKET
        if offset >= end:
            return False
        if pid in self._pending:
            self._complete(pid, out)
        parts = [buf[offset:end]]
        size = end - offset
        run = (m.end(1) - end) // TS_PACKET
        if run:
            parts += run_payloads(buf, end, run)
            size += run * PLAIN_PAYLOAD
        pad = m.start(2)
        if pad >= 0:
            offset = pad + 5 + buf[pad + 4]
            if offset < pad + TS_PACKET:
                parts.append(buf[offset : pad + TS_PACKET])
                size += pad + TS_PACKET - offset
        if last and not self._pending and size <= MAX_PES_BYTES:  # what flush would do next
            self._unit(self._types[pid], rai, parts, out)
            return True
        pend = _Pending(self._types[pid], rai, parts, size)
        self._pending[pid] = pend
        self._check_size(pid, pend)
        return True

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

    def _packet(self, buf: bytes, i: int, out: list[AccessUnit]) -> int:
        """The packet at `i`; the PID of the PES it was added to (its plain run may follow),
        or -1."""
        b1 = buf[i + 1]
        pid = ((b1 & 0x1F) << 8) | buf[i + 2]
        afc = buf[i + 3] & 0x30
        offset, rai = 4, False
        if afc & 0x20:
            alen = buf[i + 4]
            rai = alen > 0 and buf[i + 5] & 0x40 != 0
            offset = 5 + alen
        if not afc & 0x10 or offset >= TS_PACKET:
            return -1
        start = b1 & 0x40
        if pid == 0 or pid in self._pmt_pids:
            # muxers repeat PAT and PMT every ~100 ms, unchanged: parse only what changed
            payload = buf[i + offset : i + TS_PACKET]
            if start and self._psi.get(pid) != payload:
                self._psi[pid] = payload
                (self._pat if pid == 0 else self._pmt)(payload)
        elif pid in self._types:
            payload = buf[i + offset : i + TS_PACKET]
            if start:
                if pid in self._pending:
                    self._complete(pid, out)
                self._pending[pid] = _Pending(self._types[pid], rai, [payload], len(payload))
                return pid
            pend = self._pending.get(pid)
            if pend is not None:
                pend.parts.append(payload)
                pend.size += len(payload)
                return pid if self._check_size(pid, pend) else -1
        return -1

    def _check_size(self, pid: int, pend: _Pending) -> bool:
        """False (and the unit dropped) when it grew past MAX_PES_BYTES: a broken stream."""
        if pend.size <= MAX_PES_BYTES:
            return True
        del self._pending[pid]
        self.errors += 1
        return False

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
                if pid not in self._runs:
                    self._runs[pid] = plain_runs(pid)
                    self._frames[pid] = frame_packets(pid)
            j += 5 + es_len

    def _complete(self, pid: int, out: list[AccessUnit]) -> None:
        pend = self._pending.pop(pid, None)
        if pend is not None:
            self._unit(pend.stream_type, pend.random_access, pend.parts, out)

    def _unit(self, stream_type: int, rai: bool, parts: list[bytes], out: list[AccessUnit]) -> None:
        pes = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
            self.errors += 1
            return
        flags, hlen = pes[7], pes[8]
        pts = _read_ts(pes[9:14]) if flags & 0x80 and len(pes) >= 14 else None
        dts = _read_ts(pes[14:19]) if flags & 0x40 and len(pes) >= 19 else None
        data = pes[9 + hlen :]
        declared = (pes[4] << 8) | pes[5]
        if declared:
            data = data[: max(0, declared - 3 - hlen)]
        key = rai or (stream_type in VIDEO_TYPES and is_keyframe(stream_type, data))
        out.append(AccessUnit(stream_type, pts, dts, key, data))


def _read_ts(field: bytes) -> int:
    """A PES PTS/DTS: 33 bits in 5 bytes (4-bit prefix, 3 + 15 + 15 bits, each with a marker)."""
    v = int.from_bytes(field, "big")
    return ((v >> 3) & 0x1C0000000) | ((v >> 2) & 0x3FFF8000) | ((v >> 1) & 0x7FFF)
