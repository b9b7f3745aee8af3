"""RTP packets of a PS stream (RFC 3550; GB/T 28181 §C.2), and RFC 4571 framing for TCP. Pure.

One PS pack (a frame) is cut into RTP payloads of at most `MAX_PAYLOAD` bytes, all with the
frame's 90 kHz timestamp, the marker bit on the last one. The SSRC is the offer's `y=` value:
GB receivers match streams to sessions by it, so it is never invented when one was given.
"""

from __future__ import annotations

import struct

MAX_PAYLOAD = 1400  # fits a 1500-byte Ethernet MTU with IP/UDP/RTP headers
_HEADER = struct.Struct(">BBHII")


class RtpPacketizer:
    def __init__(self, ssrc: int, payload_type: int = 96, seq: int = 0) -> None:
        self.ssrc = ssrc & 0xFFFFFFFF
        self.payload_type = payload_type & 0x7F
        self.seq = seq & 0xFFFF
        self.packets = 0
        self.octets = 0

    def packets_of(self, ps: bytes, timestamp: int) -> list[bytes]:
        n = len(ps)
        if n <= MAX_PAYLOAD:  # one packet: most frames of a live view
            seq = self.seq
            self.seq = (seq + 1) & 0xFFFF
            self.packets += 1
            self.octets += n
            b1 = self.payload_type | 0x80
            return [_HEADER.pack(0x80, b1, seq, timestamp & 0xFFFFFFFF, self.ssrc) + ps]
        out: list[bytes] = []
        seq, ts, ssrc = self.seq, timestamp & 0xFFFFFFFF, self.ssrc
        head, pt = _HEADER.pack, self.payload_type
        for i in range(0, n, MAX_PAYLOAD):
            b1 = pt | 0x80 if i + MAX_PAYLOAD >= n else pt  # the marker on a frame's last one
            out.append(head(0x80, b1, seq, ts, ssrc) + ps[i : i + MAX_PAYLOAD])
            seq = (seq + 1) & 0xFFFF
        self.seq = seq
        self.packets += len(out)
        self.octets += n
        return out


GSO_SEGMENT = 12 + MAX_PAYLOAD  # the size of every RTP packet of a frame but its last
GSO_MAX_SEGMENTS = 45  # 45 x 1412 bytes < 64 KiB, the most one UDP datagram send carries


def gso_batches(packets: list[bytes]) -> list[bytes]:
    """The packets as UDP segmentation-offload sends (Linux UDP_SEGMENT, set to
    `GSO_SEGMENT`): runs of packets that are all `GSO_SEGMENT` long but for the last, joined.
    The kernel cuts each send back into exactly these datagrams, so the receiver sees the same
    packets; the sender makes one system call per frame instead of one per packet. A run
    ends after a shorter packet (a frame's last) or `GSO_MAX_SEGMENTS` packets."""
    out: list[bytes] = []
    run: list[bytes] = []
    for p in packets:
        run.append(p)
        if len(p) != GSO_SEGMENT or len(run) == GSO_MAX_SEGMENTS:
            out.append(run[0] if len(run) == 1 else b"".join(run))
            run = []
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out


def frame_tcp(packet: bytes) -> bytes:
    """RFC 4571: a 16-bit big-endian length before each RTP packet on a TCP stream."""
    return struct.pack(">H", len(packet)) + packet


def parse_rtp(packet: bytes) -> tuple[int, int, int, int, bytes]:
    """(payload type, sequence, timestamp, ssrc, payload) of one RTP packet (for tests and
    the device side); ValueError when it is not RTP version 2."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise ValueError("not an RTP version 2 packet")
    _, b1, seq, ts, ssrc = struct.unpack(">BBHII", packet[:12])
    skip = 12 + 4 * (packet[0] & 0x0F)
    return b1 & 0x7F, seq, ts, ssrc, packet[skip:]
