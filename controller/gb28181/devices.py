"""GB/T 28181 devices registering to Vigil: REGISTER, keepalive, Catalog (the I/O shell around
`access` and `manscdp`).

A REGISTER is judged by `access.judge_register` against the device's row (worker thread);
200 records where it registered from, and a device registering afresh (`devstate.afresh`:
first time, another Call-ID or address, after a lapse; not a refresh) is sent a Catalog
query at once: a restarted NVR may have gained or lost channels while it was down. Its
keepalives (MESSAGE Notify Keepalive) are answered 200 and kept in memory and, at most every
30 s, in its row (`devstate`: the fleet view of any replica reads it); its Catalog answer
pages are collected by SN until SumNum items arrived (or a page says no more), then its
channels are written to the catalog as cameras, each with its own Status (ON/OFF: the fleet
view and upper platforms show a channel the device reports OFF as offline). The catalog is
asked again on a Catalog NOTIFY and on a keepalive once the last query is
`catalog_refresh_s` old (`devstate.catalog_due`); a device registering afresh is also
SUBSCRIBEd to (`subscriptions`, `catalog_sub`), and its NOTIFYs go there. A device that
leaves an INVITE unanswered is marked so (`no_answer`) until it is heard from again. A
MESSAGE from a code that is not registered is answered 403. A device registered over TCP
keeps, with its registration, the address to connect to when its connection is closed
(`dial.target`): taken from a REGISTER that passed the digest check only, so no forged
Contact is ever dialed. Requests from anything that is not a device (upper platforms) are
left to the cascade (`on_request` returns False).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from controller.gb28181 import access, devstate, dial, manscdp, sip
from controller.gb28181.codes import is_code
from controller.gb28181.devtypes import Device, DeviceBackend, Subscriptions
from controller.gb28181.transport import Addr, Inbound, SipTransport
from controller.times import LOCAL_ZONE

log = logging.getLogger("vigil.gb28181")
T = TypeVar("T")
MAX_OPEN_QUERIES = 4  # Catalog queries a device has not finished answering, kept by SN


class DeviceAccess:
    def __init__(
        self,
        transport: SipTransport,
        backend: DeviceBackend,
        server_id: str,
        realm: str,
        host: str,
        keepalive_timeout_s: float = 180.0,
        catalog_refresh_s: float = 600.0,
    ) -> None:
        self.transport = transport
        self.backend = backend
        self.server_id = server_id
        self.realm = realm
        self.host = host
        self.keepalive_timeout_s = keepalive_timeout_s
        self.catalog_refresh_s = catalog_refresh_s
        self.nonces = access.Nonces()
        self.devices: dict[str, Device] = {}
        # Call-ID of an INVITE session Vigil holds with a device -> called on the device's BYE
        self.calls: dict[str, Callable[[], None]] = {}
        self.refused = 0
        self._sn = 0
        self._writes: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        self.subscriptions: Subscriptions | None = None  # Catalog SUBSCRIBEs (none: not sent)

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def answering(self, device_id: str) -> bool:
        """False while the device's last request from Vigil went unanswered and nothing was
        heard from it since (it vanished without unregistering)."""
        dev = self.devices.get(device_id)
        return dev is not None and dev.unanswered_at is None

    def no_answer(self, device_id: str, why: str = "") -> None:
        """A request to the device got no answer at all (`why`: what failed, when more can be
        said than that): said in its row (the fleet view)."""
        dev = self.devices.get(device_id)
        if dev is None or dev.unanswered_at is not None:
            return
        dev.unanswered_at = asyncio.get_running_loop().time()
        dev.unanswered_why = why[:160]
        log.warning("device %s does not answer; its INVITEs fail at once until it is heard "
                    "from again", device_id)  # fmt: skip
        self._write(self.backend.unanswered, device_id)

    async def moved_to(self, device_id: str) -> str:
        """The other controller replica the device registered to since it did here ("": it
        did not), read from its row before an INVITE. A device that moved is forgotten here:
        its sessions, recording and live view are the other replica's (one recorder per
        channel, not two writing the same chain)."""
        try:
            other = await self._in_thread(self.backend.elsewhere, device_id)
        except Exception as exc:  # the database away: this replica goes on as it was
            log.warning("device %s: cannot read where it registered: %s", device_id, exc)
            return ""
        if other and self.devices.pop(device_id, None) is not None:
            log.warning("device %s registered to replica %s since: forgotten here", device_id,
                        other[:100])  # fmt: skip
        return other

    def heard(self, dev: Device, now: float) -> None:
        """A keepalive (or any request) from the device: alive, its row kept fresh."""
        dev.last_seen = now
        if dev.unanswered_at is not None or devstate.write_seen(dev.seen_written, now):
            if dev.unanswered_at is not None:
                log.info("device %s is heard from again", dev.device_id)
            dev.unanswered_at, dev.seen_written = None, now
            self._write(self.backend.seen, dev.device_id)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run `coro` on the loop, kept referenced until done (a bare task can be collected)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _write(self, fn: Callable[[str], None], device_id: str) -> None:
        async def write() -> None:
            try:
                await self._in_thread(fn, device_id)
            except Exception as exc:  # the database away: the next keepalive writes again
                log.warning("device %s: its row not updated: %s", device_id, exc)

        task = asyncio.get_running_loop().create_task(write())
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """Let the row writes under way finish (a keepalive's, an unanswered INVITE's): left
        pending, each is lost and a "Task was destroyed" warning when the loop closes."""
        if self.subscriptions is not None:
            await self.subscriptions.close()
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=2.0)

    def online(self, device_id: str) -> bool:
        dev = self.devices.get(device_id)
        now = time.monotonic()  # the loop's clock; callable from any thread
        return (
            dev is not None and dev.until > now and now - dev.last_seen < self.keepalive_timeout_s
        )

    async def on_request(self, inbound: Inbound) -> bool:
        """Handle a device's request; False when it is not from a device (the cascade's)."""
        msg = inbound.msg
        user = sip.uri_user(msg.get("From"))
        ended = self.calls.pop(msg.call_id, None) if msg.method == "BYE" else None
        if ended is not None:  # a device ends a stream Vigil asked for (From: the channel)
            self.transport.reply(inbound, sip.response(msg, 200))
            ended()
            return True
        if msg.method == "REGISTER":
            await self._register(inbound, user)
            return True
        dev = self.devices.get(user)
        if dev is None:
            if msg.method == "MESSAGE" and is_code(user) and user != self.server_id:
                known = await self._in_thread(self.backend.known, user)
                if known is not None:
                    self.refuse(inbound, 403, f"device {user} is not registered")
                    return True
            return False
        if msg.method == "MESSAGE":
            await self._message(inbound, dev)
        elif msg.method == "OPTIONS":
            self.transport.reply(inbound, sip.response(msg, 200))
        elif msg.method == "NOTIFY" and self.subscriptions is not None:
            await self.subscriptions.on_notify(inbound, dev)  # heard from, if it is taken
        else:
            self.refuse(inbound, 405, f"{msg.method} from a device is not handled")
        return True

    def refuse(self, inbound: Inbound, status: int, why: str) -> None:
        self.refused += 1
        log.info("device SIP %s refused %d: %s", inbound.msg.method, status, why)
        reason = "".join(c if 32 <= ord(c) < 127 else "?" for c in why)[:100]
        self.transport.reply(inbound, sip.response(inbound.msg, status, reason=reason))

    async def _register(self, inbound: Inbound, user: str) -> None:
        msg = inbound.msg
        known = await self._in_thread(self.backend.known, user) if is_code(user) else None
        loop = asyncio.get_running_loop()
        verdict = access.judge_register(
            user, msg.get("Authorization"), msg.get("Expires"), known, self.realm,
            self.nonces, time.time(),
        )  # fmt: skip
        if verdict.status == 401:
            reply = sip.response(msg, 401, to_tag=sip.new_tag())
            reply.add("WWW-Authenticate", verdict.challenge)
            self.transport.reply(inbound, reply)
            return
        if verdict.status != 200:
            self.refuse(inbound, verdict.status, verdict.reason)
            return
        ok = sip.response(msg, 200, to_tag=sip.new_tag())
        ok.add("Expires", str(verdict.expires_s))
        ok.add("Date", _gb_date())
        contact = msg.get("Contact")
        if contact:
            ok.add("Contact", contact)
        self.transport.reply(inbound, ok)
        addr = inbound.source  # where it really is (NAT, a Contact without host): answer there
        if verdict.expires_s == 0:
            self.devices.pop(user, None)
            if self.subscriptions is not None:
                self.subscriptions.stop(user)
            log.info("device %s unregistered", user)
            await self._in_thread(self.backend.registered, user, "", 0)
            return
        now = loop.time()
        dev = self.devices.get(user)
        held = None if dev is None else devstate.Registration(dev.reg_call_id, dev.addr, dev.until)
        tcp = inbound.tcp is not None and dev is not None and dev.tcp  # now and before
        fresh = devstate.afresh(held, msg.call_id, addr, now, tcp)
        if dev is None:
            dev = self.devices[user] = Device(user, addr, now + verdict.expires_s, now)
        elif fresh:
            dev.epoch += 1
            log.info("device %s registered afresh (restarted?): epoch %d", user, dev.epoch)
        if fresh:  # before anything awaits: recording waits for the answer (`supervise.hold`)
            dev.catalog_wait = now
        dev.addr, dev.until, dev.last_seen = addr, now + verdict.expires_s, now
        dev.reg_call_id, dev.seen_written, dev.unanswered_at = msg.call_id, now, None
        dev.tcp = inbound.tcp is not None
        dev.dial = self._dial_target(user, contact, addr) if dev.tcp else None
        log.info("device %s registered from %s:%d for %d s", user, *addr, verdict.expires_s)
        where = f"{addr[0]}:{addr[1]}"
        await self._in_thread(self.backend.registered, user, where, verdict.expires_s)
        if fresh:  # it may have gained or lost channels while it was down: ask again
            self._spawn(self.ask_catalog(dev))
            if self.subscriptions is not None:  # and be told what changes from now on
                self.subscriptions.start(dev)

    @staticmethod
    def _dial_target(user: str, contact: str, source: Addr) -> Addr:
        """Where to connect to the device when its connection is closed (authenticated only:
        called after the digest verified)."""
        chosen = dial.target(contact, source)
        if chosen.note:
            log.info("device %s: connections to it go to %s:%d (%s)", user, *chosen.addr,
                     chosen.note)  # fmt: skip
        return chosen.addr

    def via(self, tcp: bool) -> str:
        """A Via header value for a new request to a device (a new branch)."""
        proto = "TCP" if tcp else "UDP"
        return (
            f"SIP/2.0/{proto} {self.host}:{self.transport.local[1]};rport;branch={sip.new_branch()}"
        )

    def next_sn(self) -> int:
        """The SN of a new MANSCDP query to a device."""
        self._sn += 1
        return self._sn

    def _request(self, dev: Device, method: str) -> sip.SipMessage:
        self.next_sn()
        dev.cseq += 1
        msg = sip.SipMessage(method=method, uri=f"sip:{dev.device_id}@{dev.addr[0]}:{dev.addr[1]}")
        msg.add("Via", self.via(dev.tcp))
        msg.add("From", f"<sip:{self.server_id}@{self.realm}>;tag={sip.new_tag()}")
        msg.add("To", f"<sip:{dev.device_id}@{self.realm}>")
        msg.add("Call-ID", secrets.token_hex(12))
        msg.add("CSeq", f"{dev.cseq} {method}")
        msg.add("Max-Forwards", "70")
        msg.add("User-Agent", "Vigil")
        return msg

    async def ask_catalog(self, dev: Device) -> bool:
        """Send the device a Catalog query; True when it accepted it (the answer follows)."""
        msg = self._request(dev, "MESSAGE")
        msg.add("Content-Type", "Application/MANSCDP+xml")
        msg.body = manscdp.query("Catalog", self._sn, dev.device_id)
        while len(dev.pages) >= MAX_OPEN_QUERIES:  # queries never answered: the oldest go
            del dev.pages[next(iter(dev.pages))]
        dev.pages[str(self._sn)] = []
        dev.catalog_asked = asyncio.get_running_loop().time()
        resp = await self.transport.request(msg, dev.addr, dev.tcp, dev.dial)
        if resp is None or resp.status != 200:
            what = "no answer" if resp is None else f"{resp.status} {resp.reason}"
            log.warning("device %s: Catalog query not taken (%s)", dev.device_id, what)
            dev.catalog_wait = None
            return False
        return True

    async def _message(self, inbound: Inbound, dev: Device) -> None:
        msg = inbound.msg
        if "manscdp" not in msg.get("Content-Type").lower():
            self.refuse(inbound, 415, "MESSAGE body is not Application/MANSCDP+xml")
            return
        try:
            head = manscdp.parse(msg.body)
        except manscdp.XmlError as exc:
            self.refuse(inbound, exc.status, str(exc))
            return
        if head.device_id and head.device_id != dev.device_id and head.cmd_type == "Keepalive":
            why = f"keepalive for {head.device_id[:24]!r} from {dev.device_id}"
            self.refuse(inbound, 403, why)
            return
        now = asyncio.get_running_loop().time()
        self.heard(dev, now)
        if head.root == "Notify" and head.cmd_type in ("Keepalive", "Catalog"):
            notified = head.cmd_type == "Catalog"  # its channels changed (GB/T 28181 §9.6.3)
            if not notified:
                dev.keepalives += 1
            self.transport.reply(inbound, sip.response(msg, 200))
            if devstate.catalog_due(dev.catalog_asked, now, self.catalog_refresh_s, notified):
                self._spawn(self.ask_catalog(dev))
            return
        if head.root == "Response" and head.cmd_type == "Catalog":
            try:
                page = manscdp.parse_catalog_answer(msg.body)
            except manscdp.XmlError as exc:
                self.refuse(inbound, exc.status, str(exc))
                return
            if page.sn not in dev.pages:
                self.refuse(inbound, 481, f"no Catalog query with SN {page.sn[:12]!r}")
                return
            self.transport.reply(inbound, sip.response(msg, 200))
            await self._catalog_page(dev, page)
            return
        self.transport.reply(inbound, sip.response(msg, 200))  # other Notify/Response: taken

    async def _catalog_page(self, dev: Device, page: manscdp.CatalogAnswer) -> None:
        for code, text in page.odd_status:
            log.warning("device %s: channel %s Status %r is not ON/OFF/ONLINE/OFFLINE: taken "
                        "as unknown", dev.device_id, code, text)  # fmt: skip
        items = dev.pages[page.sn]
        items.extend(page.items)
        if len(items) > manscdp.MAX_CATALOG_ITEMS:
            del dev.pages[page.sn]
            log.warning("device %s: Catalog over %d items; ignored", dev.device_id, len(items))
            return
        if len(items) < page.total and page.items:
            return
        del dev.pages[page.sn]
        try:
            dev.channels = await self._in_thread(self.backend.set_channels, dev.device_id, items)
            own = await self._in_thread(self.backend.own_channels, dev.device_id)
        except Exception as exc:  # a code clash with another camera, the database away
            log.error("device %s: cannot store its channels: %s", dev.device_id, exc)
            return
        finally:
            dev.catalog_wait = None
        # only its own: a listed code that is another device's camera is never INVITEd here
        listed = [c for c in manscdp.video_channels(dev.device_id, items) if c.code in own]
        dev.channel_codes = [c.code for c in listed]
        dev.channel_status = {c.code: c.status for c in listed}
        log.info("device %s: %d channels in the catalog", dev.device_id, dev.channels)


def _gb_date() -> str:
    """Date header devices set their clock from (GB/T 28181 §9.10): local time, ms."""
    return datetime.now(LOCAL_ZONE).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
