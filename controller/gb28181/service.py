"""The GB/T 28181 endpoint: requests from upper platforms, and the streams they asked for.

Every request is first matched to a configured upper platform by its From user (the server
id); anything else is refused 403. MESSAGE queries are answered from `cascade.Responder`
(blocking catalog reads run on worker threads, never on the SIP loop); INVITE is checked in
this order, each failure a SIP status and an audit entry: camera code known (404), in the
platform's scope (403), stream limit (486), SDP usable (400/488), and for Playback/Download
the range (`footage.check_range`: reversed or oversize 400, before the platform's footage
window 403) and footage in it (404; only on the camera's agent: a footage request is filed
and the answer is 480 with Retry-After, `_fetch`), then answered 200 with Vigil's SDP.
Media starts on ACK, ends on BYE (or when the source ends: Vigil then sends BYE itself).
INFO with MANSRTSP changes the speed or pauses a recorded stream.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from controller.gb28181 import footage, manscdp, sdp, sip
from controller.gb28181.cascade import QueryError, Responder
from controller.gb28181.cascade_types import Backend, Session
from controller.gb28181.codes import Directory, Place
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.livewatch import LiveWatch
from controller.gb28181.media import (
    Pace,
    Sink,
    TcpSink,
    UdpSink,
    recorded_units,
    run_stream,
)
from controller.gb28181.ps import AccessUnit
from controller.gb28181.pump import LiveOut, LivePump, PumpViewer
from controller.gb28181.transport import Inbound, SipTransport
from controller.gb28181.upper import UpperLink, new_request, send_message
from controller.live.feed import FeedState, Status
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer

log = logging.getLogger("vigil.gb28181")
US = 1_000_000
ACK_WAIT_S = 32.0
# Live feeds a cascade cannot be given, refused before the 200 (status, reason).
_LIVE_REFUSALS = {
    FeedState.AGENT_UNREACHABLE: (480, "the camera's agent is not connected"),
    FeedState.LINK_BUSY: (486, "the camera's link has no room for another live stream"),
}


class GbService:
    def __init__(
        self,
        transport: SipTransport,
        links: Sequence[UpperLink],
        backend: Backend,
        hub: LiveHub | None,
        host: str,
        now_us: Callable[[], int],
        *,
        page_size: int = 10,
        max_streams: int = 64,
        device_of: Callable[[str], str | None] = lambda _c: None,
        devices: DeviceAccess | None = None,
    ) -> None:
        self.transport = transport
        self.links = list(links)
        self.backend = backend
        self.hub = hub
        self.host = host
        self.now_us = now_us
        self.page_size = page_size
        self.max_streams = max_streams
        self.device_of = device_of
        self.devices = devices
        self.sessions: dict[str, Session] = {}
        self.pump = LivePump()
        self.watch = LiveWatch(self._feed_status, self._feed_gone)
        self._places: tuple[float, list[Place]] | None = None

    # -- lookups (worker threads) ------------------------------------------------------------

    def _snapshot(self, link: UpperLink) -> tuple[Directory, frozenset[str]]:
        places = self.backend.places()
        return Directory.of(places), self.backend.visible(link.cfg.org, link.cfg.areas, places)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def link_of(self, msg: sip.SipMessage) -> UpperLink | None:
        user = sip.uri_user(msg.get("From"))
        return next((lk for lk in self.links if lk.cfg.server_id == user), None)

    # -- requests ----------------------------------------------------------------------------

    async def on_request(self, inbound: Inbound) -> None:
        msg = inbound.msg
        if msg.method == "ACK":
            self._on_ack(msg)
            return
        if self.devices is not None and await self.devices.on_request(inbound):
            return
        link = self.link_of(msg)
        if link is None:
            log.warning(
                "SIP %s from %s:%d: %s is not a configured upper platform",
                msg.method, *inbound.source, sip.uri_user(msg.get("From"))[:24] or "nobody",
            )  # fmt: skip
            self.transport.reply(inbound, sip.response(msg, 403, reason="Unknown platform"))
            return
        handlers = {
            "MESSAGE": self._on_message,
            "INVITE": self._on_invite,
            "BYE": self._on_bye,
            "INFO": self._on_info,
            "CANCEL": self._on_bye,
        }
        handler = handlers.get(msg.method)
        if msg.method == "OPTIONS":
            self.transport.reply(inbound, sip.response(msg, 200))
        elif handler is None:
            self.transport.reply(inbound, sip.response(msg, 405))
        else:
            await handler(inbound, link)

    def _refuse(
        self, inbound: Inbound, status: int, why: str, refusal: footage.Refusal | None = None
    ) -> None:
        log.info("SIP %s refused %d: %s", inbound.msg.method, status, why)
        out = sip.response(inbound.msg, status, reason=_reason(why))
        if refusal is not None:  # what an upper platform shows its user, and when to retry
            out.add("Warning", footage.warning(self.host, refusal.warning))
            if refusal.retry_after_s:
                out.add("Retry-After", str(refusal.retry_after_s))
        self.transport.reply(inbound, out)

    async def _on_message(self, inbound: Inbound, link: UpperLink) -> None:
        msg = inbound.msg
        if "manscdp" not in msg.get("Content-Type").lower():
            self._refuse(inbound, 415, "MESSAGE body is not Application/MANSCDP+xml")
            return
        try:
            query = manscdp.parse(msg.body)
        except manscdp.XmlError as exc:
            self._refuse(inbound, exc.status, str(exc))
            return
        if query.root != "Query":
            self.transport.reply(inbound, sip.response(msg, 200))  # Notify/Control/Response
            return
        try:
            bodies = await self._in_thread(self._answer, link, query)
        except QueryError as exc:
            self._refuse(inbound, exc.status, str(exc))
            return
        self.transport.reply(inbound, sip.response(msg, 200))
        for body in bodies:
            resp = await send_message(self.transport, link, self.host, body)
            if resp is None or resp.status != 200:
                log.warning("upper %s: %s answer not taken", link.cfg.server_id, query.cmd_type)
                break

    def _answer(self, link: UpperLink, query: manscdp.Query) -> list[bytes]:
        directory, visible = self._snapshot(link)

        def ranges(camera_id: str, start: int, end: int) -> list[tuple[int, int]]:
            return self.backend.ranges(camera_id, start, end)

        now = self.now_us()
        responder = Responder(
            link.cfg.local_id, "Vigil", directory, visible, ranges, now, self.page_size,
            on_device=self.backend.on_device, offline=self.backend.offline_channels(),
            window_from_us=footage.window_from(link.cfg.footage_days, now),
        )  # fmt: skip
        return responder.answer(query)

    # -- INVITE / ACK / BYE / INFO -------------------------------------------------------------

    async def _on_invite(self, inbound: Inbound, link: UpperLink) -> None:
        msg = inbound.msg
        if msg.call_id in self.sessions:
            return  # a re-INVITE or a retransmission after our answer: the cache answered
        self.transport.reply(inbound, sip.response(msg, 100))
        code = sip.uri_user(msg.uri) or msg.get("Subject").split(":", 1)[0]
        directory, visible = await self._in_thread(self._snapshot, link)
        coded = directory.by_code(code)
        audit_detail: dict[str, Any] = {"code": code[:24]}
        if coded is None:
            await self._deny(inbound, link, "", 404, f"no camera with code {code[:24]!r}")
            return
        camera_id = coded.place.camera_id
        if camera_id not in visible:
            await self._deny(inbound, link, camera_id, 403, "camera not in this platform's scope")
            return
        if len(self.sessions) >= self.max_streams:
            await self._deny(inbound, link, camera_id, 486, "cascade stream limit reached")
            return
        try:
            offer = sdp.parse_offer(msg.body)
        except sdp.SdpError as exc:
            await self._deny(inbound, link, camera_id, exc.status, str(exc))
            return
        pace: Pace | None = None
        viewer: Viewer | None = None
        if offer.session == "Play":
            if self.hub is None:
                await self._deny(inbound, link, camera_id, 503, "live view is not running")
                return
            device = await self._in_thread(self.device_of, camera_id) or coded.place.device_id
            loop = asyncio.get_running_loop()
            viewer = PumpViewer(camera_id, loop, self.hub.options.viewer_chunks)
            self.hub.join(camera_id, device, viewer)  # counts on the links like any viewer
            status = self.hub.status(camera_id)
            refusal = _LIVE_REFUSALS.get(status.state) if status is not None else None
            if refusal is not None:
                self.hub.leave(viewer)
                await self._deny(inbound, link, camera_id, *refusal)
                return
            units: AsyncIterator[AccessUnit] | None = None
        else:
            days = link.cfg.footage_days
            window = footage.window_from(days, self.now_us())
            served = footage.check_range(offer.start_s * US, offer.end_s * US, window, days)
            if isinstance(served, footage.Refusal):
                await self._deny(inbound, link, camera_id, served.status, served.reason, served)
                return
            start, end = served
            segments = await self._in_thread(self.backend.segments, camera_id, start, end)
            buffered = await self._in_thread(self.backend.on_device, camera_id, start, end)
            span = footage.fetch_span(buffered, start, end)
            if not segments:
                if span is not None:  # RecordInfo listed it: ask for it, say when to retry
                    await self._fetch(inbound, link, camera_id, span)
                    return
                await self._deny(inbound, link, camera_id, 404, "no footage in the time range")
                return
            if span is not None:  # partly stored: that plays now, the rest is asked for
                await self._file_rest(link, camera_id, span)
            pace = Pace(offer.speed if offer.session == "Download" else 1.0)
            units = recorded_units(segments, self.backend.read, pace, start, end)
            audit_detail.update(from_us=start, to_us=end)
        sink: Sink = (
            UdpSink(offer.address, offer.port, self.host)
            if offer.transport == "udp"
            else TcpSink(offer.address, offer.port, self.host, offer.transport == "tcp-active")
        )
        await sink.open()
        ssrc = offer.ssrc or f"{secrets.randbelow(10**9):010d}"
        session = Session(
            msg.call_id, link, camera_id, coded.code, offer, sink, sip.new_tag(),
            msg.get("From"), msg.get("Contact"), units, pace, viewer=viewer,
        )  # fmt: skip
        session.invited_at = asyncio.get_running_loop().time()
        session.ssrc = ssrc
        self.sessions[msg.call_id] = session
        # An active TCP sender has no port to offer: 9 (discard), as RFC 4145 says.
        answer = sdp.answer(offer, coded.code, self.host, sink.local_port or 9, ssrc)
        ok = sip.response(msg, 200, to_tag=session.to_tag, body=answer)
        ok.add("Contact", f"<sip:{coded.code}@{self.host}:{self.transport.local[1]}>")
        ok.add("Content-Type", "application/sdp")
        self.transport.reply(inbound, ok)
        asyncio.get_running_loop().call_later(ACK_WAIT_S, self._no_ack, session)
        audit_detail.update(session=offer.session, transport=offer.transport, ssrc=ssrc)
        await self._in_thread(
            self.backend.audit, "gb_cascade_view", link, camera_id, "ok", "", audit_detail
        )
        log.info(
            "upper %s: %s of %s (%s) to %s:%d over %s, ssrc %s",
            link.cfg.server_id, offer.session, camera_id, coded.code,
            offer.address, offer.port, offer.transport, ssrc,
        )  # fmt: skip

    async def _deny(
        self,
        inbound: Inbound,
        link: UpperLink,
        camera_id: str,
        status: int,
        why: str,
        refusal: footage.Refusal | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._refuse(inbound, status, why, refusal)
        await self._in_thread(
            self.backend.audit, "gb_cascade_view", link, camera_id, "refused", why, detail or {}
        )

    async def _fetch(
        self, inbound: Inbound, link: UpperLink, camera_id: str, span: tuple[int, int]
    ) -> None:
        """Footage only on the camera's agent: file (or find) the footage request that
        fetches it, and answer 480 with when to retry."""
        try:
            filed = await self._in_thread(self.backend.request_footage, link, camera_id, *span)
        except footage.FetchError as exc:
            why = f"footage still on the camera's agent (not uploaded); cannot request it: {exc}"
            await self._deny(inbound, link, camera_id, 480, why)
            return
        job = filed.job
        refusal = footage.fetching(job.job_id, job.eta_us, self.now_us(), filed.new)
        detail = {"job_id": job.job_id, "from_us": span[0], "to_us": span[1], "filed": filed.new}
        await self._deny(inbound, link, camera_id, 480, refusal.reason, refusal, detail)

    async def _file_rest(self, link: UpperLink, camera_id: str, span: tuple[int, int]) -> None:
        """A range partly stored and partly still on the agent: the stored part is played,
        and the footage request for the rest is filed (or found), so the platform's next
        try gets all of it (the request is audited as the console's is)."""
        try:
            filed = await self._in_thread(self.backend.request_footage, link, camera_id, *span)
        except footage.FetchError as exc:
            log.warning("cascade %s: footage on the agent not requested: %s", camera_id, exc)
            return
        if filed.new:
            log.info("cascade %s: the rest of the range requested (job %s)", camera_id,
                     filed.job.job_id)  # fmt: skip

    def _on_ack(self, msg: sip.SipMessage) -> None:
        session = self.sessions.get(msg.call_id)
        if session is None or session.task is not None:
            return
        ssrc, pt = int(session.ssrc), session.offer.payload_type
        loop = asyncio.get_running_loop()
        if session.units is None:
            assert isinstance(session.viewer, PumpViewer)
            out = LiveOut(session.viewer, session.sink, ssrc, pt, session.stats)
            session.task = loop.create_task(self.pump.run(out))
            self.watch.add(session.call_id, session.camera_id)
        else:
            session.task = loop.create_task(
                run_stream(session.units, session.sink, ssrc, pt, session.stats)
            )
        session.task.add_done_callback(lambda _t: self._stream_done(session))

    def _no_ack(self, session: Session) -> None:
        """No ACK within 32 s (RFC 3261 Timer H): the call never started; free it all."""
        if session.task is None and not session.ended:
            log.warning("call %s: no ACK for the 200; ended", session.call_id[:40])
            asyncio.get_running_loop().create_task(self._end(session, by_us=False))

    def _feed_status(self, camera_id: str) -> Status | None:
        return self.hub.status(camera_id) if self.hub is not None else None

    def _feed_gone(self, call_id: str, why: str) -> None:
        """A live stream whose feed has stopped (livewatch.py): BYE, the reason audited."""
        session = self.sessions.get(call_id)
        if session is None or session.ended:
            return
        session.stats.ended = why
        log.info("cascade %s to %s ended: %s", session.camera_id, session.link.cfg.server_id, why)
        asyncio.get_running_loop().create_task(self._end(session, by_us=True))

    def _stream_done(self, session: Session) -> None:
        if session.ended:
            return
        asyncio.get_running_loop().create_task(self._end(session, by_us=True))

    async def _end(self, session: Session, by_us: bool) -> None:
        if session.ended:
            return
        session.ended = True
        self.sessions.pop(session.call_id, None)
        self.watch.remove(session.call_id)
        if session.task is not None and not session.task.done():
            session.task.cancel()
        session.sink.close()
        if session.viewer is not None and self.hub is not None:
            self.hub.leave(session.viewer)  # idempotent; the stream's own exit leaves too
        link = session.link
        detail = {
            "code": session.code,
            "frames": session.stats.frames,
            "bytes": session.stats.octets,
            "ended": session.stats.ended or ("bye" if not by_us else "ended"),
        }
        # audited when it ended here, not when (or whether) the platform answers our BYE
        await self._in_thread(
            self.backend.audit, "gb_cascade_view_end", link, session.camera_id, "ok", "", detail
        )
        if by_us:
            await self._bye(session)

    async def _bye(self, session: Session) -> None:
        link = session.link
        if session.offer.session != "Play":
            notify = manscdp.media_status(link.next_sn(), session.code)
            await send_message(self.transport, link, self.host, notify)
        msg = new_request(self.transport, link, "BYE", self.host, link.cfg.server_id)
        msg.set("Call-ID", session.call_id)
        msg.set("From", f"<sip:{session.code}@{link.domain}>;tag={session.to_tag}")
        msg.set("To", session.remote_from)
        await self.transport.request(msg, link.peer, link.tcp)

    async def _on_bye(self, inbound: Inbound, link: UpperLink) -> None:
        session = self.sessions.get(inbound.msg.call_id)
        if session is None:
            self._refuse(inbound, 481, "no such call")
            return
        self.transport.reply(inbound, sip.response(inbound.msg, 200))
        await self._end(session, by_us=False)

    async def _on_info(self, inbound: Inbound, link: UpperLink) -> None:
        session = self.sessions.get(inbound.msg.call_id)
        if session is None:
            self._refuse(inbound, 481, "no such call")
            return
        if session.pace is None:
            self._refuse(inbound, 488, "speed control applies to recorded streams only")
            return
        text = inbound.msg.body.decode("utf-8", errors="replace")
        scale = re.search(r"(?im)^Scale:\s*([0-9.]+)", text)
        if text.startswith("PAUSE"):
            session.pace.set(paused=True)
        elif text.startswith("PLAY"):
            session.pace.set(speed=float(scale.group(1)) if scale else None, paused=False)
        else:
            self._refuse(inbound, 400, "INFO body is not MANSRTSP PLAY or PAUSE")
            return
        self.transport.reply(inbound, sip.response(inbound.msg, 200))

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            await self._end(session, by_us=True)


def _reason(why: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", why)[:100]
