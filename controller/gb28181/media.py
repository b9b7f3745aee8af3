"""One cascade stream: MPEG-TS from the live hub or stored segments -> PS -> RTP -> the peer.

Sources yield access units; `run_stream` packs them (ps.PsPacker), cuts RTP (rtp.py) and
writes to a sink: UDP to the offered address, TCP connecting to it (the offer said
`setup:passive`), or TCP accepting one connection on a port Vigil announced (`setup:active`),
RFC 4571 framed. Live streams are delivered by pump.py (one timer for all, `send_now`).
Recorded footage is read segment by segment and paced on its PTS at the requested
speed (Playback 1x, Download at `downloadspeed`); nothing is decoded or re-encoded.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from controller.gb28181.ps import AccessUnit, PsPacker
from controller.gb28181.rtp import GSO_SEGMENT, RtpPacketizer, frame_tcp, gso_batches
from controller.gb28181.tsdemux import TsDemuxer

log = logging.getLogger("vigil.gb28181")
CONNECT_TIMEOUT_S = 5.0
ACCEPT_TIMEOUT_S = 10.0
MAX_TCP_BUFFER = 4 * 1024 * 1024  # a live TCP receiver this far behind is too slow
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # <netinet/udp.h>; Python 3.12 names it


class Sink:
    """Where RTP goes. `open` before the SDP answer (to know the local port)."""

    local_port: int = 0

    async def open(self) -> None: ...

    async def connect(self) -> None:
        """After ACK: TCP connects or accepts here."""

    async def send(self, packets: Sequence[bytes]) -> None: ...

    def send_now(self, packets: Sequence[bytes]) -> None:
        """Send without waiting (live): what the kernel cannot take now is dropped (UDP) or
        buffered up to a limit (TCP: beyond it the stream is too slow and ends)."""

    def close(self) -> None: ...


class UdpSink(Sink):
    """RTP to the offered address from a socket connected to it: `send` skips the address
    conversion and the kernel's route lookup of an unconnected `sendto` (per packet). An ICMP
    "port unreachable" that a connected socket reports on a later send loses that packet, as
    the network would; it does not end the stream (the receiver may be restarting; a BYE or
    the session's end stops it).

    Live sends use UDP segmentation offload where the kernel has it (Linux 4.18+): one send
    per frame, which the kernel cuts into the same datagrams (`rtp.gso_batches`). A system
    call per packet was the largest part of the cascade's cost after the Python packing. A
    route whose device cannot segment refuses such a send (EIO): the sink then sends packet
    by packet from that moment, the refused frame included."""

    def __init__(self, host: str, port: int, bind_host: str) -> None:
        self._peer = (host, port)
        self._bind = bind_host
        self._sock: socket.socket | None = None
        self.dropped = 0
        self.gso = False

    async def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((self._bind, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        try:
            sock.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, GSO_SEGMENT)
            self.gso = True
        except OSError:  # an older kernel: a send per packet
            self.gso = False
        self._sock = sock
        self.local_port = sock.getsockname()[1]

    async def connect(self) -> None:
        """After ACK (no route to the offered address: OSError, the stream ends)."""
        assert self._sock is not None
        self._sock.connect(self._peer)

    async def send(self, packets: Sequence[bytes]) -> None:
        assert self._sock is not None
        for p in packets:
            try:
                self._sock.send(p)
            except BlockingIOError:
                await asyncio.sleep(0.001)  # kernel buffer full: UDP may drop, never block
            except ConnectionRefusedError:
                self.dropped += 1
            except OSError as exc:
                raise ConnectionError(f"UDP to {self._peer}: {exc}") from exc

    def send_now(self, packets: Sequence[bytes]) -> None:
        assert self._sock is not None
        send = self._sock.send
        sends = gso_batches(list(packets)) if self.gso else packets
        try:
            for p in sends:
                if len(p) > GSO_SEGMENT and not self.gso:  # refused earlier in this call
                    for i in range(0, len(p), GSO_SEGMENT):
                        send(p[i : i + GSO_SEGMENT])
                    continue
                try:
                    send(p)
                except (BlockingIOError, ConnectionRefusedError):
                    raise
                except OSError as exc:
                    if len(p) <= GSO_SEGMENT:
                        raise
                    self._no_gso(exc)
                    for i in range(0, len(p), GSO_SEGMENT):
                        send(p[i : i + GSO_SEGMENT])
        except BlockingIOError:
            self.dropped += 1  # kernel buffer full: the rest of this batch is lost, as on a net
        except ConnectionRefusedError:
            self.dropped += 1
        except OSError as exc:
            raise ConnectionError(f"UDP to {self._peer}: {exc}") from exc

    def _no_gso(self, exc: OSError) -> None:
        assert self._sock is not None
        log.warning(
            "RTP to %s: segmentation offload refused (%s); a send per packet", self._peer, exc
        )
        self.gso = False
        self._sock.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 0)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


class TcpSink(Sink):
    """`active`: connect to host:port; passive: listen on an ephemeral port, accept once."""

    def __init__(self, host: str, port: int, bind_host: str, active: bool) -> None:
        self._peer = (host, port)
        self._bind = bind_host
        self._active = active
        self._server: asyncio.AbstractServer | None = None
        self._accepted: asyncio.Future[asyncio.StreamWriter] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if self._active:
            return
        loop = asyncio.get_running_loop()
        self._accepted = loop.create_future()

        async def on_connect(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            if self._accepted is not None and not self._accepted.done():
                self._accepted.set_result(w)
            else:
                w.close()

        self._server = await asyncio.start_server(on_connect, self._bind, 0)
        self.local_port = self._server.sockets[0].getsockname()[1]

    async def connect(self) -> None:
        if self._active:
            _, self._writer = await asyncio.wait_for(
                asyncio.open_connection(*self._peer), CONNECT_TIMEOUT_S
            )
        else:
            assert self._accepted is not None
            self._writer = await asyncio.wait_for(self._accepted, ACCEPT_TIMEOUT_S)
            if self._server is not None:
                self._server.close()

    async def send(self, packets: Sequence[bytes]) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(frame_tcp(p) for p in packets))
        await self._writer.drain()

    def send_now(self, packets: Sequence[bytes]) -> None:
        assert self._writer is not None
        if self._writer.is_closing():
            raise ConnectionError("TCP media connection closed")
        if self._writer.transport.get_write_buffer_size() > MAX_TCP_BUFFER:
            raise ConnectionError(f"TCP receiver over {MAX_TCP_BUFFER} bytes behind")
        self._writer.write(b"".join(frame_tcp(p) for p in packets))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()


ReadSegment = Callable[[str], bytes]  # object key -> the segment's bytes (blocking)


class Pace:
    """Playback speed and pause, changed by the upper platform's INFO (MANSRTSP)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.version = 0  # bumped on every change: the pacer re-anchors its clock
        self._running = asyncio.Event()
        self._running.set()

    def set(self, speed: float | None = None, paused: bool | None = None) -> None:
        if speed is not None:
            self.speed = min(max(speed, 0.25), 32.0)
        if paused is True:
            self._running.clear()
        elif paused is False:
            self._running.set()
        self.version += 1

    async def wait_running(self) -> None:
        await self._running.wait()


async def recorded_units(
    segments: Sequence[tuple[str, int]], read: ReadSegment, pace: Pace, start_us: int, end_us: int
) -> AsyncIterator[AccessUnit]:
    """Stored segments (object key, start µs) in order, cut to [start_us, end_us) on each
    segment's own clock (its first DTS is its start time; the packer then starts at the first
    keyframe), paced on DTS at `pace.speed`."""
    loop = asyncio.get_running_loop()
    origin: tuple[int, float, int] | None = None  # (dts, loop time, pace version)
    for key, seg_start in segments:
        data = await loop.run_in_executor(None, read, key)
        demux = TsDemuxer()
        first: int | None = None
        origin = None  # each segment re-anchors: their clocks need not continue each other
        for au in demux.feed(data) + demux.flush():
            t = au.dts if au.dts is not None else au.pts
            if t is not None:
                first = t if first is None else first
                at_us = seg_start + ((t - first) & 0x1FFFFFFFF) * 100 // 9
                if at_us < start_us:
                    continue
                if at_us >= end_us:
                    return
            await pace.wait_running()
            if t is not None:
                if origin is None or origin[2] != pace.version:
                    origin = (t, loop.time(), pace.version)
                due = origin[1] + ((t - origin[0]) & 0x1FFFFFFFF) / 90_000 / pace.speed
                delay = due - loop.time()
                if delay > 0.002:
                    await asyncio.sleep(min(delay, 5.0))
            yield au


@dataclass(slots=True)
class StreamStats:
    packets: int = 0
    octets: int = 0
    frames: int = 0
    first_packet_at: float = 0.0  # loop time of the first RTP packet sent
    ended: str = ""


async def run_stream(
    units: AsyncIterator[AccessUnit],
    sink: Sink,
    ssrc: int,
    payload_type: int,
    stats: StreamStats,
    audio_hint: int | None = None,
) -> None:
    """Pack and send until the source ends, the sink fails or the task is cancelled (BYE)."""
    packer = PsPacker()
    rtp = RtpPacketizer(ssrc, payload_type)
    loop = asyncio.get_running_loop()
    try:
        await sink.connect()
        async for au in units:
            ps = packer.pack(au, audio_hint)
            if ps is None:
                continue
            ts = au.pts if au.pts is not None else (au.dts or 0)
            packets = rtp.packets_of(ps, ts)
            await sink.send(packets)
            if not stats.first_packet_at:
                stats.first_packet_at = loop.time()
            stats.frames += 1
            stats.packets, stats.octets = rtp.packets, rtp.octets
        stats.ended = "source ended"
    except (ConnectionError, OSError, TimeoutError) as exc:
        stats.ended = f"sink failed: {exc}"
        log.warning("cascade stream ssrc %d: %s", ssrc, stats.ended)
    finally:
        closer = getattr(units, "aclose", None)
        if closer is not None:
            await closer()
        sink.close()
