"""The bytes of an MPEG-TS segment's head that decide what the media probe finds.

Why: ingest probes every segment with PyAV (probe.py) for its codec, profile, picture size,
frame rate and audio format. That costs 0.7-1.3 ms of CPU per segment, and for a camera
whose stream does not change it finds the same facts every time. What it reads them from
is small and sits at the start of the segment: the program map (which streams, of which
types), the parameter sets in front of the first picture (H.264 SPS/PPS, H.265 VPS/SPS/PPS:
profile, size, frame timing) and the AAC ADTS header (profile, sample rate, channels).
`stream_params` returns exactly those bytes, found by walking the TS packets (tens of
microseconds); a segment whose bytes equal the ones of a segment probed before has the same
facts (ingest/caches.py, `ProbeMemo`).

It is pure and conservative: anything it does not recognise (not MPEG-TS, a stream type
other than H.264, H.265 and AAC, no complete parameter sets within the first bytes of the
first picture) gives None, and the segment is probed as before.
"""

from __future__ import annotations

TS_PACKET = 188
SYNC = 0x47
H264, HEVC, AAC_ADTS = 0x1B, 0x24, 0x0F
KNOWN_TYPES = (H264, HEVC, AAC_ADTS)
ES_BYTES = 8192  # of each stream's first PES: parameter sets come before the first picture
_H264_SETS, _H264_VCL = (7, 8), range(1, 6)
_HEVC_SETS = (32, 33, 34)


def _section(payload: bytes) -> bytes | None:
    """The PSI section starting in `payload` (after its pointer field), if whole."""
    if not payload:
        return None
    start = 1 + payload[0]
    if start + 3 > len(payload):
        return None
    end = start + 3 + (((payload[start + 1] & 0x0F) << 8) | payload[start + 2])
    return payload[start:end] if end <= len(payload) else None


def _pmt_pid(pat: bytes) -> int | None:
    """The first program's PMT PID in a PAT section."""
    for at in range(8, len(pat) - 4 - 3, 4):  # program loop, CRC excluded
        if (pat[at] << 8) | pat[at + 1]:  # program 0 is the network PID
            return ((pat[at + 2] & 0x1F) << 8) | pat[at + 3]
    return None


def _streams(pmt: bytes) -> dict[int, int] | None:
    """PID -> stream type of each elementary stream in a PMT section."""
    if len(pmt) < 16 or pmt[0] != 0x02:
        return None
    at = 12 + (((pmt[10] & 0x0F) << 8) | pmt[11])
    out: dict[int, int] = {}
    while at + 5 <= len(pmt) - 4:
        out[((pmt[at + 1] & 0x1F) << 8) | pmt[at + 2]] = pmt[at]
        at += 5 + (((pmt[at + 3] & 0x0F) << 8) | pmt[at + 4])
    return out or None


def _es(pes: bytes) -> bytes | None:
    """The elementary stream bytes of a PES packet's start."""
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
        return None
    return pes[9 + pes[8] :]


def _parameter_sets(es: bytes, hevc: bool) -> list[bytes] | None:
    """The parameter-set NAL units before the first picture; None unless a picture follows
    them within `es` (so none of them is cut off) and every kind of set is there."""
    wanted = _HEVC_SETS if hevc else _H264_SETS
    found: list[bytes] = []
    kinds: set[int] = set()
    at = es.find(b"\x00\x00\x01")
    while at >= 0:
        start = at + 3
        nxt = es.find(b"\x00\x00\x01", start)
        if start >= len(es):
            return None
        kind = (es[start] >> 1) & 0x3F if hevc else es[start] & 0x1F
        if (kind < 32) if hevc else (kind in _H264_VCL):  # the first picture
            return found if kinds == set(wanted) else None
        if nxt < 0:
            return None  # the unit may go on past what we have
        if kind in wanted:
            found.append(es[start:nxt].rstrip(b"\x00"))
            kinds.add(kind)
        at = nxt
    return None


def stream_params(head: bytes) -> bytes | None:
    """The bytes that decide the probe's facts for this segment head (see the module doc),
    or None when the head is not one this function fully understands."""
    pmt_pid: int | None = None
    pmt: bytes | None = None
    streams: dict[int, int] = {}
    first: dict[int, bytearray] = {}
    whole: set[int] = set()
    for off in range(0, len(head) - TS_PACKET + 1, TS_PACKET):
        if head[off] != SYNC:
            return None
        pid = ((head[off + 1] & 0x1F) << 8) | head[off + 2]
        unit_start = head[off + 1] & 0x40
        control = (head[off + 3] >> 4) & 0x3
        start = off + 4 + (1 + head[off + 4] if control & 0x2 else 0)
        if not control & 0x1 or start >= off + TS_PACKET:
            continue
        payload = head[start : off + TS_PACKET]
        if pid == 0 and unit_start and pmt_pid is None:
            pat = _section(payload)
            pmt_pid = None if pat is None else _pmt_pid(pat)
            if pmt_pid is None:
                return None
        elif pid == pmt_pid and unit_start and pmt is None:
            pmt = _section(payload)
            found = None if pmt is None else _streams(pmt)
            if found is None or any(t not in KNOWN_TYPES for t in found.values()):
                return None
            streams = found
        elif pid in streams and pid not in whole:
            if unit_start and pid in first:
                whole.add(pid)  # the next PES begins: the first one is all there
            elif unit_start:
                first[pid] = bytearray(payload)
            elif pid in first:
                first[pid] += payload
            if len(first.get(pid, b"")) >= ES_BYTES:
                whole.add(pid)
            if len(whole) == len(streams):
                break
    if pmt is None or not streams:
        return None
    parts = [pmt]
    for pid, kind in sorted(streams.items()):
        es = _es(bytes(first[pid])) if pid in first else None
        if es is None:
            return None
        if kind == AAC_ADTS:
            if len(es) < 4 or es[0] != 0xFF or es[1] & 0xF0 != 0xF0:
                return None
            parts.append(bytes((es[1], es[2], es[3] & 0xC0)))  # the ADTS fixed header
            continue
        sets = _parameter_sets(es, hevc=kind == HEVC)
        if sets is None:
            return None
        parts.extend(sets)
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)
