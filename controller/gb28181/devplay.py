"""A GB/T 28181 device channel's stream into Vigil: INVITE, PS over RTP in, BYE.

`play` INVITEs one channel of a registered device (SDP: Vigil receives, `recvonly`, PS/90000
on an ephemeral UDP port, `y=` a live SSRC starting with 0; or RTP over TCP with RFC 4571
framing, `TCP/RTP/AVP`: Vigil passive, `a=setup:passive`, the device connects to the offered
port, the first connection is taken; or Vigil active, `a=setup:active`, port 9 (RFC 4145):
Vigil connects to the address and port of the device's SDP answer after the ACK, for
devices that can only listen), ACKs its 200, and turns the RTP
that arrives from then on into access units (psdemux.PsOverRtp: the offered SSRC only,
losses resynced), each handed to `on_unit` on the SIP loop. `DevicePlay.stop` sends BYE
(not when the device ended the call itself: its BYE, routed here by Call-ID through
`DeviceAccess.calls`, sets `remote_bye`). `last_packet_at` (loop time) tells the recording
supervisor a stream that went silent. A device that registered over TCP is INVITEd, ACKed and
BYE'd on its connection, or when that is closed on one Vigil opens to it (`dial`): a device
that does not accept it fails the INVITE at once (503, said why) and counts as not
answering. Refusals come back as `PlayError` with the device's status, or 408 when it did
not answer: a device that sent nothing back within `answer_s` (not even 100 Trying) is
marked not answering (`DeviceAccess.no_answer`), and until it is heard from again INVITEs
to any of its channels fail at once, without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable

from controller.gb28181 import dial, sip
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.ps import AccessUnit
from controller.gb28181.psdemux import PsOverRtp
from controller.gb28181.sdp import SdpError, parse_offer
from controller.gb28181.supervise import TCP_ACTIVE, TCP_PASSIVE, UDP
from controller.gb28181.transport import DialError

log = logging.getLogger("vigil.gb28181")
RCVBUF = 4 * 1024 * 1024
CONNECT_S = 5.0  # to a listening device's media port (Vigil active)


class PlayError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _RtpIn(asyncio.DatagramProtocol):
    def __init__(
        self, rtp: PsOverRtp, on_unit: Callable[[AccessUnit], None], clock: Callable[[], float]
    ) -> None:
        self.rtp, self.on_unit, self.clock = rtp, on_unit, clock
        self.frames = 0
        self.last_packet_at: float | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.last_packet_at = self.clock()
        for au in self.rtp.packet(data):
            self.frames += 1
            self.on_unit(au)


class _TcpIn:
    """Vigil's passive end of RTP over TCP (RFC 4571: each packet after its 2-byte length).
    A connection that ends is just silence to the supervisor (the RTP timeout)."""

    def __init__(self, rtp_in: _RtpIn) -> None:
        self.rtp_in = rtp_in
        self.server: asyncio.Server | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reading: asyncio.Task[None] | None = None  # Vigil active: its connection's reader

    async def connect(self, host: str, port: int) -> None:
        """Vigil active: connect to the device's listening media port and read from it."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_S)
        self.reading = asyncio.get_running_loop().create_task(self.handle(reader, writer))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.writer is not None:  # one sender per session
            writer.close()
            return
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                self.rtp_in.datagram_received(await reader.readexactly(size), peer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.writer is not None:
            self.writer.close()
        if self.reading is not None:
            self.reading.cancel()


class DevicePlay:
    def __init__(
        self, access: DeviceAccess, invite: sip.SipMessage, ok: sip.SipMessage,
        peer: tuple[str, int], udp: asyncio.DatagramTransport | _TcpIn, rtp_in: _RtpIn,
        port: int, sip_tcp: bool = False, dial_to: tuple[str, int] | None = None,
    ) -> None:  # fmt: skip
        self.access, self.invite, self.ok, self.peer = access, invite, ok, peer
        self.sip_tcp = sip_tcp  # the device's signalling is over TCP
        self.dial_to = dial_to  # where to connect when its connection is closed
        self._udp, self.rtp_in, self.port = udp, rtp_in, port
        self.ssrc = rtp_in.rtp.ssrc or 0
        self.remote_bye = False
        self.stopped = False

    @property
    def frames(self) -> int:
        return self.rtp_in.frames

    @property
    def last_packet_at(self) -> float | None:
        return self.rtp_in.last_packet_at

    def on_remote_bye(self) -> None:
        self.remote_bye = True

    def close(self) -> None:
        """Close the port at once; the unit still being built (the last frame) is handed
        on. Idempotent; `bye` then ends the call."""
        if self.stopped:
            return
        self.stopped = True
        self.access.calls.pop(self.invite.call_id, None)
        self._udp.close()
        for au in self.rtp_in.rtp.demux.flush():
            self.rtp_in.frames += 1
            self.rtp_in.on_unit(au)

    async def stop(self) -> int:
        """`close`, then BYE: the device's answer status (408 when none; 200 when the
        device had ended the call itself)."""
        self.close()
        return await self.bye()

    async def bye(self) -> int:
        if self.remote_bye:
            return 200
        bye = _in_dialog(self.invite, self.ok, "BYE", self.access, self.sip_tcp)
        resp = await self.access.transport.request(bye, self.peer, self.sip_tcp, self.dial_to)
        return resp.status if resp is not None else 408


def _in_dialog(
    invite: sip.SipMessage, ok: sip.SipMessage, method: str, access: DeviceAccess, tcp: bool
) -> sip.SipMessage:
    number = invite.cseq[0] + (0 if method == "ACK" else 1)
    msg = sip.SipMessage(method=method, uri=invite.uri)
    msg.add("Via", access.via(tcp))
    msg.add("From", invite.get("From"))
    msg.add("To", ok.get("To"))
    msg.add("Call-ID", invite.call_id)
    msg.add("CSeq", f"{number} {method}")
    msg.add("Max-Forwards", "70")
    return msg


async def _listen(
    host: str, rtp_in: _RtpIn, media: str
) -> tuple[asyncio.DatagramTransport | _TcpIn, int]:
    """Where the device's RTP will come in: a UDP socket, a TCP listener (passive), or the
    connection Vigil opens after the answer (active: port 9 in the offer, RFC 4145)."""
    loop = asyncio.get_running_loop()
    if media == TCP_ACTIVE:
        return _TcpIn(rtp_in), 9
    if media == TCP_PASSIVE:
        tcp_in = _TcpIn(rtp_in)
        tcp_in.server = await asyncio.start_server(tcp_in.handle, host, 0)
        return tcp_in, int(tcp_in.server.sockets[0].getsockname()[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # a keyframe burst fits
    sock.bind((host, 0))
    udp, _ = await loop.create_datagram_endpoint(lambda: rtp_in, sock=sock)
    return udp, int(udp.get_extra_info("sockname")[1])


async def play(
    access: DeviceAccess,
    device_id: str,
    channel: str,
    on_unit: Callable[[AccessUnit], None],
    media: str = UDP,
    answer_s: float = 2.0,
) -> DevicePlay:
    dev = access.devices.get(device_id)
    if dev is None:
        raise PlayError(404, f"device {device_id} is not registered")
    if dev.unanswered_at is not None:
        last = f"; {dev.unanswered_why}" if dev.unanswered_why else ""
        raise PlayError(408, f"device {device_id} does not answer (waiting to hear from it{last})")
    if dev.tcp and dev.dial is not None:
        await _reach(access, device_id, dev.addr, dev.dial, answer_s)
    ssrc = f"0{secrets.randbelow(10**9):09d}"
    loop = asyncio.get_running_loop()
    rtp_in = _RtpIn(PsOverRtp(int(ssrc)), on_unit, loop.time)
    udp, port = await _listen(access.host, rtp_in, media)
    proto = "RTP/AVP" if media == UDP else "TCP/RTP/AVP"
    side = "active" if media == TCP_ACTIVE else "passive"
    setup = "" if media == UDP else f"a=setup:{side}\r\na=connection:new\r\n"
    offer = (
        f"v=0\r\no={access.server_id} 0 0 IN IP4 {access.host}\r\ns=Play\r\n"
        f"c=IN IP4 {access.host}\r\nt=0 0\r\nm=video {port} {proto} 96\r\n"
        f"a=recvonly\r\na=rtpmap:96 PS/90000\r\n{setup}y={ssrc}\r\n"
    )
    msg = sip.SipMessage(method="INVITE", uri=f"sip:{channel}@{dev.addr[0]}:{dev.addr[1]}")
    msg.add("Via", access.via(dev.tcp))
    msg.add("From", f"<sip:{access.server_id}@{access.realm}>;tag={sip.new_tag()}")
    msg.add("To", f"<sip:{channel}@{access.realm}>")
    msg.add("Call-ID", secrets.token_hex(12))
    msg.add("CSeq", "1 INVITE")
    param = ";transport=tcp" if dev.tcp else ""
    msg.add("Contact", f"<sip:{access.server_id}@{access.host}:{access.transport.local[1]}{param}>")
    msg.add("Subject", f"{channel}:{ssrc},{access.server_id}:0")
    msg.add("Max-Forwards", "70")
    msg.add("Content-Type", "APPLICATION/SDP")
    msg.body = offer.encode()
    resp, heard = await access.transport.invite(msg, dev.addr, answer_s, dev.tcp, dev.dial)
    if resp is None or resp.status != 200:
        udp.close()
        if not heard:
            access.no_answer(device_id)
            raise PlayError(408, f"device {device_id} does not answer (nothing in {answer_s:g} s)")
        status, what = (408, "no answer") if resp is None else (resp.status, resp.reason)
        raise PlayError(status, f"device {device_id} channel {channel}: INVITE {what}")
    ack = _in_dialog(msg, resp, "ACK", access, dev.tcp)
    access.transport.send(ack, dev.addr, dev.tcp, dev.dial)
    played = DevicePlay(access, msg, resp, dev.addr, udp, rtp_in, port, dev.tcp, dev.dial)
    access.calls[msg.call_id] = played.on_remote_bye
    if isinstance(udp, _TcpIn) and media == TCP_ACTIVE:
        await _connect(played, udp, resp.body)
    log.info("device %s channel %s: live into %s port %d, ssrc %s", device_id, channel,
             media, played.port, ssrc)  # fmt: skip
    return played


async def _reach(
    access: DeviceAccess, device_id: str, peer: tuple[str, int], to: tuple[str, int],
    answer_s: float,
) -> None:  # fmt: skip
    """The device's signalling connection, before anything is set up for its media: its own,
    or one Vigil opens now. A device that does not accept one is not answering (its other
    channels fail at once until it is heard from again); Vigil's own limit blames nobody."""
    try:
        await access.transport.reach(peer, to, dial.connect_s(answer_s))
    except DialError as exc:
        if exc.blame:
            access.no_answer(device_id, str(exc))
        raise PlayError(503, f"设备 SIP 端口连不上 device {device_id}: {exc}") from exc


async def _connect(played: DevicePlay, tcp_in: _TcpIn, answer: bytes) -> None:
    """Vigil active: connect to where the device's answer says it listens; a device that
    names no port or does not accept is BYE'd and refused (502)."""
    try:
        where = parse_offer(answer)
        await tcp_in.connect(where.address, where.port)
        played.port = where.port
    except (SdpError, OSError, TimeoutError) as exc:
        await played.stop()
        raise PlayError(502, f"cannot connect to the device's media port: {exc}") from exc
