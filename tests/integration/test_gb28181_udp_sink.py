"""The live cascade's UDP sink on the real kernel: one send per frame (UDP segmentation
offload) and the receiver gets exactly the RTP packets, in order; a route that refuses
segmentation makes the sink send packet by packet, the refused frame included."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest

from controller.gb28181.media import UdpSink
from controller.gb28181.rtp import GSO_SEGMENT, MAX_PAYLOAD, RtpPacketizer


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    yield rx
    rx.close()


def frames(rtp: RtpPacketizer) -> list[bytes]:
    packets: list[bytes] = []
    for size in (200, MAX_PAYLOAD, MAX_PAYLOAD + 1, 9_000, 80_000, 1):
        packets += rtp.packets_of(bytes(range(256)) * (size // 256) + b"\x07" * (size % 256), 0)
    return packets


class Refusing:
    """The sink's socket on a route whose device cannot segment: a send longer than one
    segment fails with EIO, as Linux answers then; every call is counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: list[int] = []

    def send(self, data: bytes) -> int:
        self.sends.append(len(data))
        if len(data) > GSO_SEGMENT:
            raise OSError(errno.EIO, "Input/output error")
        return self.sock.send(data)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.sock.setsockopt(level, option, value)

    def close(self) -> None:
        self.sock.close()


def test_one_send_per_frame_gives_the_receiver_the_same_packets(receiver: socket.socket) -> None:
    async def main() -> list[bytes]:
        sink = UdpSink(*receiver.getsockname(), "127.0.0.1")
        await sink.open()
        await sink.connect()
        assert sink.gso, "this kernel refused UDP_SEGMENT (Linux 4.18+ has it)"
        packets = frames(RtpPacketizer(77))
        sink.send_now(packets)
        sink.close()
        return packets

    packets = asyncio.run(main())
    assert [receiver.recv(65536) for _ in packets] == packets


def test_a_route_refusing_segmentation_falls_back_to_a_send_per_packet(
    receiver: socket.socket,
) -> None:
    async def main() -> tuple[list[bytes], Refusing, UdpSink]:
        sink = UdpSink(*receiver.getsockname(), "127.0.0.1")
        await sink.open()
        await sink.connect()
        refusing = Refusing(sink._sock)  # type: ignore[arg-type]
        sink._sock = refusing  # type: ignore[assignment]
        rtp = RtpPacketizer(78)
        packets = frames(rtp)
        sink.send_now(packets)
        later = rtp.packets_of(b"\x01" * 5000, 9)
        sink.send_now(later)
        sink.close()
        return packets + later, refusing, sink

    packets, refusing, sink = asyncio.run(main())
    assert [receiver.recv(65536) for _ in packets] == packets  # nothing lost, in order
    assert not sink.gso and sink.dropped == 0
    assert sum(1 for n in refusing.sends if n > GSO_SEGMENT) == 1  # refused once, then never
    assert refusing.sends[-4:] == [len(p) for p in packets[-4:]]  # packet by packet after
