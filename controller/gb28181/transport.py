"""SIP over UDP and TCP on one asyncio loop: receive, answer bad input, client transactions.

Every datagram or TCP frame is parsed by `sip.parse`; one that fails is logged in one line
(peer, reason, no payload: it may carry a password digest) and, when it looks like a request,
answered with the status the parser named (400, 413, 505) built from whatever headers could be
read. Nothing a peer sends can raise out of here. Client transactions (REGISTER, MESSAGE, BYE)
retransmit over UDP at T1 = 0.5 s doubling (RFC 3261 §17.1.2) and give up after
`timeout_s`; over TCP they are sent once. A request given `answer_s` (an INVITE to a device)
gives up sooner when nothing at all came back by then, not even a 100 Trying (which stops
its retransmissions): a peer that answers nothing in `answer_s` is not there, and a viewer
should hear so in seconds, not after the whole timeout. Requests retransmitted by a peer get
the same final response again (kept by Via branch for 32 s) instead of being handled twice.
With `listen(..., tcp=True)` it also accepts TCP connections on the same port (devices that
register over TCP): requests to such a peer go back over the connection it opened, and when
that one is closed, over a connection Vigil opens to the device (`reach`, with `dial`: the
address `dial.target` chose at its authenticated REGISTER; the limits are `dial`'s). A
connection Vigil opened carries the device's answers and its later requests like its own,
and is closed after `dial.IDLE_S` without traffic.
The tasks it starts (a handler per request, a reader per TCP connection) are kept, so none is
garbage-collected mid-flight, and `aclose` cancels and awaits them: the loop closes with none
left pending.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from controller.gb28181 import dial as dialing
from controller.gb28181 import sip
from controller.gb28181.sip import SipError, SipMessage

log = logging.getLogger("vigil.gb28181")
Addr = tuple[str, int]
T1 = 0.5
RESPONSE_CACHE_S = 32.0


@dataclass(slots=True)
class Inbound:
    """A request received, and how to answer it on the same path."""

    msg: SipMessage
    source: Addr
    tcp: asyncio.StreamWriter | None = None


Handler = Callable[[Inbound], Awaitable[None]]


class DialError(Exception):
    """No connection to a device could be had. `blame`: the device did not accept it (False:
    Vigil's own limit refused to try, which says nothing about the device)."""

    def __init__(self, message: str, blame: bool = True) -> None:
        super().__init__(message)
        self.blame = blame


def lenient_reply(raw: bytes, status: int, reason: str) -> bytes | None:
    """A best-effort error response to a request `sip.parse` refused; None when the bytes do
    not even look like a request (then nothing is sent)."""
    text = raw[:8192].decode("utf-8", errors="replace")
    first = text.split("\n", 1)[0]
    if first.startswith("SIP/") or " " not in first:
        return None
    wanted: dict[str, list[str]] = {"via": [], "from": [], "to": [], "call-id": [], "cseq": []}
    compact = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
    for line in text.split("\n")[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        key = compact.get(name.strip().lower(), name.strip().lower())
        if sep and key in wanted:
            wanted[key].append(value.strip())
    if not wanted["via"] or not wanted["call-id"]:
        return None
    msg = SipMessage(status=status, reason=re.sub(r"[\r\n]", " ", reason)[:120])
    for via in wanted["via"]:
        msg.add("Via", via)
    for name in ("from", "to", "call-id", "cseq"):
        if wanted[name]:
            msg.add(name, wanted[name][0])
    return msg.to_bytes()


class SipTransport(asyncio.DatagramProtocol):
    def __init__(self, on_request: Handler, timeout_s: float = 8.0) -> None:
        self._on_request = on_request
        self._timeout = timeout_s
        self._udp: asyncio.DatagramTransport | None = None
        self._waiting: dict[str, asyncio.Future[SipMessage]] = {}
        self._trying: set[str] = set()  # waiting requests a provisional response came for
        self._answered: dict[str, tuple[bytes, float]] = {}
        self._handling: set[str] = set()  # requests being handled, not answered yet
        self._tcp: dict[Addr, asyncio.StreamWriter] = {}
        self._dialed: dict[asyncio.StreamWriter, float] = {}  # Vigil opened it -> last traffic
        self._dialing: dict[Addr, asyncio.Future[asyncio.StreamWriter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.local: Addr = ("", 0)
        self.bad_messages = 0

    # -- setup --------------------------------------------------------------------------------

    async def listen(self, host: str, port: int, tcp: bool = False) -> Addr:
        """Bind UDP `host:port`; with `tcp`, accept TCP connections on the same port too."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self._udp = transport
        self.local = transport.get_extra_info("sockname")[:2]
        if tcp:
            self._server = await asyncio.start_server(self._accept, host, self.local[1])
        return self.local

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A peer's own TCP connection: its requests are read from it and requests to it are
        written on it (it is the way back through its NAT)."""
        name = writer.get_extra_info("peername") or ("", 0)
        peer = (str(name[0]), int(name[1]))
        old = self._tcp.get(peer)
        if old is not None:
            old.close()
        self._tcp[peer] = writer
        self._spawn(self._read_tcp(reader, writer, peer))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._udp = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for w in self._tcp.values():
            w.close()

    async def aclose(self) -> None:
        """Close, then cancel the handlers and readers still running and wait for them (an
        answer after the loop stops would be lost anyway; left pending, each is a "Task was
        destroyed but it is pending" when the loop closes)."""
        self.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tcp_to(self, peer: Addr) -> asyncio.StreamWriter:
        """The TCP connection to `peer` (opened once, reopened after it breaks)."""
        w = self._tcp.get(peer)
        if w is not None and not w.is_closing():
            return w
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*peer), 5.0)
        self._tcp[peer] = writer
        self._spawn(self._read_tcp(reader, writer, peer))
        return writer

    def _open(self, peer: Addr) -> asyncio.StreamWriter | None:
        w = self._tcp.get(peer)
        return w if w is not None and not w.is_closing() else None

    @property
    def dialed(self) -> int:
        """Connections Vigil opened to devices, open now."""
        return len(self._dialed)

    async def reach(
        self, peer: Addr, dial: Addr, connect_s: float = dialing.CONNECT_S
    ) -> asyncio.StreamWriter:
        """The connection to a device that registered over TCP from `peer`: its own while it
        is up, else the one Vigil opened to `dial`, opened now when there is none (one connect
        per address however many requests wait for it). Raises `DialError`."""
        for addr in (peer, dial):
            if (w := self._open(addr)) is not None:
                return w
        pending = self._dialing.get(dial)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if pending.cancelled():  # the connect was abandoned, not this request
                    raise DialError(f"connect to {dial[0]}:{dial[1]} abandoned") from None
                raise
        why = dialing.refuse(len(self._dialed), len(self._dialing))
        if why:
            raise DialError(f"not connecting to {dial[0]}:{dial[1]}: {why}", blame=False)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[asyncio.StreamWriter] = loop.create_future()
        self._dialing[dial] = fut
        try:
            conn = asyncio.open_connection(*dial)
            reader, writer = await asyncio.wait_for(conn, connect_s)
        except (OSError, TimeoutError) as exc:
            why = dialing.failure(exc, connect_s)
            err = DialError(f"cannot connect over TCP to {dial[0]}:{dial[1]}: {why}")
            fut.set_exception(err)
            fut.exception()  # retrieved: nobody else may be waiting for it
            raise err from exc
        except BaseException:
            fut.cancel()
            raise
        finally:
            self._dialing.pop(dial, None)
        self._tcp[dial] = writer
        self._dialed[writer] = loop.time()
        self._spawn(self._read_tcp(reader, writer, dial))
        fut.set_result(writer)
        log.info("SIP over TCP: connected to %s:%d (its own connection is closed)", *dial)
        return writer

    async def _next(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """The next bytes read: b"" at the end, or once a connection Vigil opened has had no
        traffic either way for `dial.IDLE_S`."""
        loop = asyncio.get_running_loop()
        while writer in self._dialed:
            left = dialing.idle_left(self._dialed[writer], loop.time())
            if left <= 0:
                log.info("SIP over TCP: idle connection to %s closed", _name(writer))
                return b""
            try:
                data = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                continue  # written to meanwhile? then not idle yet
            self._dialed[writer] = loop.time()
            return data
        return await reader.read(65536)

    async def _read_tcp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Addr
    ) -> None:
        buf = b""
        try:
            while data := await self._next(reader, writer):
                frames, buf, error = sip.split_stream(buf + data)
                for frame in frames:
                    self._received(frame, peer, writer, datagram=False)
                if error:
                    log.warning("SIP over TCP from %s:%d: %s; closing", *peer, error)
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._dialed.pop(writer, None)
            if self._tcp.get(peer) is writer:
                del self._tcp[peer]

    # -- receive ------------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        peer = (str(addr[0]), int(str(addr[1])))
        if not data.strip(b"\r\n\x00"):
            return  # a CRLF keepalive
        self._received(data, peer, None, datagram=True)

    def _received(
        self, data: bytes, peer: Addr, tcp: asyncio.StreamWriter | None, datagram: bool
    ) -> None:
        try:
            msg = sip.parse(data, datagram=datagram)
        except SipError as exc:
            self.bad_messages += 1
            log.warning("bad SIP from %s:%d (%d bytes): %s", *peer, len(data), exc.message)
            reply = lenient_reply(data, exc.status, exc.message)
            if reply is not None:
                self._send_raw(reply, peer, tcp)
            return
        if not msg.is_request:
            branch = sip.param(msg.get("Via"), "branch")
            key = branch + msg.cseq[1]
            fut = self._waiting.get(key)
            if fut is not None and not fut.done():
                if msg.status >= 200:
                    fut.set_result(msg)
                else:
                    self._trying.add(key)
            return
        key = sip.param(msg.get("Via"), "branch") + msg.method
        cached = self._answered.get(key)
        if msg.method != "ACK":
            if cached is not None:
                self._send_raw(cached[0], peer, tcp)  # a retransmission: the same answer
                return
            if key in self._handling:  # retransmitted before we answered: answered once
                return
            self._handling.add(key)
        self._spawn(self._handle(Inbound(msg, peer, tcp), key))

    async def _handle(self, inbound: Inbound, key: str) -> None:
        try:
            await self._on_request(inbound)
        except Exception:
            log.exception("handling SIP %s from %s:%d failed", inbound.msg.method, *inbound.source)
            self.reply(inbound, sip.response(inbound.msg, 500))
        finally:
            self._handling.discard(key)

    # -- send ---------------------------------------------------------------------------------

    def _send_raw(self, data: bytes, peer: Addr, tcp: asyncio.StreamWriter | None) -> None:
        if tcp is not None:
            if not tcp.is_closing():
                tcp.write(data)
                if tcp in self._dialed:
                    self._dialed[tcp] = asyncio.get_running_loop().time()
        elif self._udp is not None:
            self._udp.sendto(data, peer)

    def send(
        self, msg: SipMessage, peer: Addr, tcp: bool = False, dial: Addr | None = None
    ) -> None:
        """Send without a transaction (an ACK to a 2xx): over UDP, or with `tcp` on the open
        connection to `peer` or the one Vigil opened to `dial` (none open: not sent; the peer
        retransmits its 2xx)."""
        writer = (self._open(peer) or (self._open(dial) if dial else None)) if tcp else None
        if tcp and writer is None:
            log.warning("SIP over TCP to %s:%d: no connection for %s", *peer, msg.method)
            return
        self._send_raw(msg.to_bytes(), peer, writer)

    def reply(self, inbound: Inbound, response: SipMessage) -> None:
        data = response.to_bytes()
        if response.status >= 200:
            now = asyncio.get_running_loop().time()
            key = sip.param(inbound.msg.get("Via"), "branch") + inbound.msg.method
            self._answered[key] = (data, now)
            if len(self._answered) > 4096:
                self._answered = {
                    k: v for k, v in self._answered.items() if now - v[1] < RESPONSE_CACHE_S
                }
        self._send_raw(data, inbound.source, inbound.tcp)

    async def request(
        self, msg: SipMessage, peer: Addr, tcp: bool, dial: Addr | None = None
    ) -> SipMessage | None:
        """Send a request; its final response, or None after the timeout (or a TCP failure).
        With `dial`, a device's: see `reach`."""
        return (await self._transaction(msg, peer, tcp, None, dial))[0]

    async def invite(
        self, msg: SipMessage, peer: Addr, answer_s: float, tcp: bool = False,
        dial: Addr | None = None,
    ) -> tuple[SipMessage | None, bool]:  # fmt: skip
        """Send an INVITE: its final response (None: none), and whether anything at all came
        back (False: nothing within `answer_s`, not even a 100 Trying)."""
        return await self._transaction(msg, peer, tcp, answer_s, dial)

    async def _transaction(
        self, msg: SipMessage, peer: Addr, tcp: bool, answer_s: float | None, dial: Addr | None
    ) -> tuple[SipMessage | None, bool]:
        branch = sip.param(msg.get("Via"), "branch")
        key = branch + msg.method
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._waiting[key] = fut
        data = msg.to_bytes()
        try:
            if tcp:
                try:
                    if dial is None:
                        writer = await self.tcp_to(peer)
                    else:
                        writer = await self.reach(peer, dial, dialing.connect_s(answer_s))
                except (OSError, TimeoutError, DialError) as exc:
                    log.warning("SIP over TCP to %s:%d: %s", *peer, exc)
                    return None, False
                self._send_raw(data, peer, writer)
                if answer_s is not None:
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), answer_s), True
                    except TimeoutError:
                        if key not in self._trying:
                            return None, False
                return await asyncio.wait_for(fut, self._timeout), True
            interval, waited = T1, 0.0
            give_up = self._timeout if answer_s is None else min(answer_s, self._timeout)
            while waited < self._timeout:
                if key not in self._trying:  # a provisional answer ends retransmissions
                    self._send_raw(data, peer, None)
                step = min(interval, self._timeout - waited)
                if key not in self._trying:
                    step = min(step, max(give_up - waited, 0.01))
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), step), True
                except TimeoutError:
                    waited += step
                    interval = min(interval * 2, 4.0)
                if waited >= give_up and key not in self._trying:
                    return None, False
            return None, key in self._trying
        except TimeoutError:
            return None, key in self._trying
        finally:
            self._waiting.pop(key, None)
            self._trying.discard(key)


def _name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername") or ("?", 0)
    return f"{peer[0]}:{peer[1]}"
