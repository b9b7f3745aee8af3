"""Catalog subscriptions to devices (GB/T 28181-2016 §9.11.1): the I/O shell around `catsub`.

A device that registers afresh is sent, besides its Catalog query, a SUBSCRIBE (Event:
Catalog, `Expires` `catsub.SUBSCRIBE_S`); its 200 starts the subscription, renewed in the
same dialog at 2/3 of the time granted, for as long as that registration lasts (a device
that registers afresh again has forgotten it: a new one is made). The device then sends
NOTIFYs in that dialog whose body (Notify/Catalog) lists what changed: `catsub.changes`
says what, `GbDeviceStore.apply_changes` stores it, and the device's channels in memory
(what recording INVITEs) follow, with no full re-query. A device that answers the SUBSCRIBE
with an error, or not at all, is not asked again until it registers afresh: the periodic
query (`catalog_refresh_s`) and its own Catalog MESSAGEs keep its catalog current.

Refused, each one log line and a SIP status, nothing changed: a NOTIFY outside a
subscription Vigil holds with that device (its Call-ID) 481, another event package 489,
a body that is not a Catalog Notify or malformed 400, over 32 KiB 413.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.gb28181 import catsub, manscdp, sip
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devtypes import Device
from controller.gb28181.transport import Inbound

log = logging.getLogger("vigil.gb28181")
T = TypeVar("T")


@dataclass(slots=True)
class Subscription:
    device_id: str
    epoch: int  # the registration it belongs to
    call_id: str
    from_tag: str
    to_tag: str = ""
    cseq: int = 0
    granted_s: int = 0  # 0: not answered yet
    notifies: int = 0  # NOTIFYs applied


class CatalogSubscriber:
    def __init__(self, access: DeviceAccess, asked_s: int = catsub.SUBSCRIBE_S) -> None:
        self.access = access
        self.asked_s = asked_s
        self.subs: dict[str, Subscription] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def start(self, dev: Device) -> None:
        """Subscribe to `dev`'s catalog (it registered afresh): any earlier one is over."""
        old = self._tasks.pop(dev.device_id, None)
        if old is not None:
            old.cancel()
        sub = Subscription(dev.device_id, dev.epoch, secrets.token_hex(12), sip.new_tag())
        self.subs[dev.device_id] = sub
        task = asyncio.get_running_loop().create_task(self._keep(dev, sub))
        self._tasks[dev.device_id] = task
        task.add_done_callback(lambda t: self._ended(sub, t))

    def _ended(self, sub: Subscription, task: asyncio.Task[None]) -> None:
        if self._tasks.get(sub.device_id) is task:
            del self._tasks[sub.device_id]
            if self.subs.get(sub.device_id) is sub:
                del self.subs[sub.device_id]

    async def _keep(self, dev: Device, sub: Subscription) -> None:
        """SUBSCRIBE, then renew at 2/3 of each grant while the registration lasts."""
        while self.access.devices.get(dev.device_id) is dev and dev.epoch == sub.epoch:
            resp = await self.access.transport.request(
                self._subscribe(dev, sub), dev.addr, dev.tcp, dev.dial
            )
            if resp is None or resp.status >= 300:
                what = "no answer" if resp is None else f"{resp.status} {resp.reason[:60]}"
                log.info("device %s: Catalog SUBSCRIBE not taken (%s): its catalog is asked "
                         "every catalog_refresh_s", dev.device_id, what)  # fmt: skip
                return
            granted = catsub.granted_s(resp.get("Expires"), self.asked_s)
            if granted is None:
                log.info("device %s: Catalog SUBSCRIBE granted 0 s", dev.device_id)
                return
            sub.to_tag = sub.to_tag or sip.param(resp.get("To"), "tag")
            if not sub.granted_s:
                log.info("device %s: Catalog subscription for %d s", dev.device_id, granted)
            sub.granted_s = granted
            await asyncio.sleep(catsub.renew_in(granted))

    def _subscribe(self, dev: Device, sub: Subscription) -> sip.SipMessage:
        sub.cseq += 1
        a = self.access
        msg = sip.SipMessage(method="SUBSCRIBE", uri=f"sip:{dev.device_id}@{dev.addr[0]}:"
                             f"{dev.addr[1]}")  # fmt: skip
        msg.add("Via", a.via(dev.tcp))
        msg.add("From", f"<sip:{a.server_id}@{a.realm}>;tag={sub.from_tag}")
        to = f"<sip:{dev.device_id}@{a.realm}>"
        msg.add("To", f"{to};tag={sub.to_tag}" if sub.to_tag else to)
        msg.add("Call-ID", sub.call_id)
        msg.add("CSeq", f"{sub.cseq} SUBSCRIBE")
        msg.add("Contact", f"<sip:{a.server_id}@{a.host}:{a.transport.local[1]}>")
        msg.add("Event", "Catalog")
        msg.add("Expires", str(self.asked_s))
        msg.add("Max-Forwards", "70")
        msg.add("User-Agent", "Vigil")
        msg.add("Content-Type", "Application/MANSCDP+xml")
        msg.body = manscdp.query("Catalog", a.next_sn(), dev.device_id)
        return msg

    async def on_notify(self, inbound: Inbound, dev: Device) -> None:
        """A NOTIFY from a registered device: applied when it is in the catalog
        subscription Vigil holds with it; otherwise refused, changing nothing."""
        msg = inbound.msg
        sub = self.subs.get(dev.device_id)
        if sub is None or msg.call_id != sub.call_id:
            self.access.refuse(inbound, 481, "no subscription with that Call-ID")
            return
        event = msg.get("Event").split(";")[0].strip().lower()
        if event != "catalog":
            self.access.refuse(inbound, 489, f"event {event[:24]!r} is not subscribed")
            return
        ended = msg.get("Subscription-State").split(";")[0].strip().lower() == "terminated"
        try:
            notify = manscdp.parse_catalog_notify(msg.body) if msg.body or not ended else None
        except manscdp.XmlError as exc:
            self.access.refuse(inbound, exc.status, str(exc))
            return
        self.access.transport.reply(inbound, sip.response(msg, 200))
        self.access.heard(dev, asyncio.get_running_loop().time())
        if ended:
            log.info("device %s ended the Catalog subscription", dev.device_id)
            self.stop(dev.device_id)
        if notify is None:
            return
        for code, text in notify.odd:
            log.warning("device %s: channel %s Catalog event %r is not one of %s: ignored",
                        dev.device_id, code, text, "/".join(manscdp.EVENTS))  # fmt: skip
        if notify.events:
            await self._apply(dev, notify)
        sub.notifies += 1

    async def _apply(self, dev: Device, notify: manscdp.CatalogNotify) -> None:
        async with self._lock:  # one NOTIFY's changes on top of the one before
            await self._apply_now(dev, notify)

    async def _apply_now(self, dev: Device, notify: manscdp.CatalogNotify) -> None:
        known = dev.channel_codes is not None  # None: its channels not in memory yet
        listed = list(dev.channel_codes or [])
        found = catsub.changes(dev.device_id, listed, dev.channel_status, notify.events)
        for code in found.ignored:
            log.warning("device %s: Catalog event for %s, not one of its channels: ignored",
                        dev.device_id, code)  # fmt: skip
        backend = self.access.backend
        try:
            own = await self._in_thread(backend.apply_changes, dev.device_id, found.upsert,
                                        found.status, found.listed)  # fmt: skip
        except Exception as exc:  # the database away: the next full query puts it right
            log.error("device %s: Catalog changes not stored: %s", dev.device_id, exc)
            return
        if not known:  # stored; the supervisor reads them all from the catalog
            return
        dev.channel_codes = [c for c in found.listed if c in own]
        dev.channel_status = {c: own[c] for c in dev.channel_codes}
        dev.channels = len(dev.channel_codes)
        log.info("device %s: Catalog NOTIFY applied (%d events); %d channels", dev.device_id,
                 len(notify.events), dev.channels)  # fmt: skip

    def stop(self, device_id: str) -> None:
        task = self._tasks.pop(device_id, None)
        self.subs.pop(device_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """End every renewal timer (the subscriptions lapse on the devices)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
