"""Catalog subscription (GB/T 28181-2016 §9.11.1): a device's Catalog NOTIFY body read, and
what its items change (pure; no I/O)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from controller.gb28181 import catsub, manscdp, sip
from controller.gb28181.catalog_sub import CatalogSubscriber, Subscription
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.manscdp import OFF, ON, UNKNOWN, CatalogEvent, Channel, XmlError
from controller.gb28181.transport import Inbound
from tests.unit.test_gb28181_access import DEV, REALM, authorization, nonce_of
from tests.unit.test_gb28181_dial import SERVER, FakeBackend, FakeTransport, register

CH1, CH2, CH3 = "62120200001310000001", "62120200001310000002", "62120200001310000003"
OTHER = "62120200001310000077"  # another device's camera


def notify(*items: str, root: str = "Notify", cmd: str = "Catalog") -> bytes:
    body = "".join(f"<Item>{i}</Item>" for i in items)
    return (
        f'<?xml version="1.0" encoding="GB2312"?><{root}><CmdType>{cmd}</CmdType><SN>7</SN>'
        f"<DeviceID>{DEV}</DeviceID><SumNum>{len(items)}</SumNum>"
        f'<DeviceList Num="{len(items)}">{body}</DeviceList></{root}>'
    ).encode("gb18030")


def item(code: str, event: str, extra: str = "") -> str:
    return f"<DeviceID>{code}</DeviceID><Event>{event}</Event>{extra}"


def ev(event: str, code: str, name: str = "", status: str = UNKNOWN) -> CatalogEvent:
    return CatalogEvent(event, Channel(code, name, status=status))


def test_a_notify_is_read_with_each_items_event() -> None:
    got = manscdp.parse_catalog_notify(notify(
        item(CH1, "OFF"), item(CH2, " on "),
        item(CH3, "ADD", "<Name>北门</Name><Status>ON</Status>"),
        item(CH1, "del"), item(CH2, "VLOST"), item(CH3, "DEFECT"), item(CH2, "UPDATE"),
    ))  # fmt: skip
    assert got.sn == "7" and got.device_id == DEV and got.odd == ()
    assert [(e.event, e.channel.code) for e in got.events] == [
        ("OFF", CH1), ("ON", CH2), ("ADD", CH3), ("DEL", CH1), ("VLOST", CH2),
        ("DEFECT", CH3), ("UPDATE", CH2),
    ]  # fmt: skip
    assert got.events[2].channel.name == "北门" and got.events[2].channel.status == ON


def test_unknown_events_are_flagged_and_skipped_not_guessed() -> None:
    got = manscdp.parse_catalog_notify(
        notify(item(CH1, "EXPLODE"), item(CH2, ""), item(CH3, "X" * 5000), item(CH1, "OFF"))
    )
    assert [(e.event, e.channel.code) for e in got.events] == [("OFF", CH1)]
    assert got.odd == ((CH1, "EXPLODE"), (CH2, ""), (CH3, "X" * manscdp.MAX_STATUS_CHARS))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<Notify><CmdType>Catalog</CmdType>", 400),  # malformed
        (notify(root="Response"), 400),  # an answer, not a notification
        (notify(cmd="Keepalive"), 400),
        (notify(item("6212", "OFF")), 400),  # a code that is not 20 digits
        (notify(item(CH1 + "9", "OFF")), 400),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><Notify><CmdType>Catalog</CmdType></Notify>', 400),
        (notify(item(CH1, "OFF", "<Pad>" + "x" * 40_000 + "</Pad>")), 413),
        (b"\xff\xfe<Notify>", 400),
    ],
)
def test_bad_notify_bodies_are_refused_with_their_status(body: bytes, status: int) -> None:
    with pytest.raises(XmlError) as err:
        manscdp.parse_catalog_notify(body)
    assert err.value.status == status


def test_too_many_items_is_refused() -> None:
    small = "".join(f"<Item><DeviceID>{CH1}</DeviceID><Event>ON</Event></Item>" for _ in range(3))
    body = notify().replace(b"</DeviceList>", small.encode() * 1 + b"</DeviceList>")
    assert len(manscdp.parse_catalog_notify(body).events) == 3
    many = f"<Item><DeviceID>{CH1}</DeviceID></Item>" * (manscdp.MAX_CATALOG_ITEMS + 1)
    with pytest.raises(XmlError):  # over 32 KiB as text already: 413 before counting
        manscdp.parse_catalog_notify(
            notify().replace(b"</DeviceList>", many.encode() + b"</DeviceList>")
        )


def test_status_events_change_the_devices_own_channels() -> None:
    got = catsub.changes(DEV, [CH1, CH2], {CH1, CH2}, [ev("OFF", CH1), ev("VLOST", CH2)])
    assert got.status == {CH1: OFF, CH2: OFF} and got.upsert == () and got.ignored == ()
    assert got.listed == (CH1, CH2)
    got = catsub.changes(DEV, [CH1], {CH1}, [ev("DEFECT", CH1), ev("ON", CH1)])
    assert got.status == {CH1: ON}  # the last word wins


def test_a_status_event_for_a_code_not_its_own_changes_nothing() -> None:
    """Another device's camera, an unknown code, the device itself, an organisation."""
    org = CatalogEvent("OFF", Channel("62120200002160000001", "", parental=True))
    got = catsub.changes(DEV, [CH1], {CH1}, [ev("OFF", OTHER), ev("OFF", DEV), org])
    assert got.status == {} and got.upsert == () and got.listed == (CH1,)
    assert got.ignored == (OTHER, DEV, "62120200002160000001")


def test_add_and_update_are_stored_like_catalog_items_and_del_unlists() -> None:
    got = catsub.changes(DEV, [CH1, CH2], {CH1, CH2}, [
        ev("ADD", CH3, "北门", ON), ev("DEL", CH2), ev("UPDATE", CH1, "东门", OFF),
        ev("ADD", OTHER, "not mine", OFF),  # the store leaves another device's code alone
    ])  # fmt: skip
    assert [(c.code, c.name, c.status) for c in got.upsert] == [
        (CH3, "北门", ON), (CH1, "东门", OFF), (OTHER, "not mine", OFF),
    ]  # fmt: skip
    assert got.listed == (CH1, CH3, OTHER) and got.status == {}


def test_an_add_without_a_name_is_named_by_its_code_and_an_update_without_one_renames_nothing() -> (
    None
):
    got = catsub.changes(DEV, [CH1], {CH1}, [ev("ADD", CH3), ev("UPDATE", CH1, status=OFF)])
    assert [(c.code, c.name) for c in got.upsert] == [(CH3, CH3)]
    assert got.status == {CH1: OFF}
    nothing = catsub.changes(DEV, [CH1], {CH1}, [ev("UPDATE", CH1)])  # no name, no status
    assert nothing.status == {} and nothing.upsert == ()


def test_a_deleted_channel_reported_on_again_is_listed_again() -> None:
    got = catsub.changes(DEV, [CH1, CH2], {CH1, CH2}, [ev("DEL", CH2), ev("ON", CH2)])
    assert got.listed == (CH1, CH2) and got.status == {CH2: ON}
    gone = catsub.changes(DEV, [CH1, CH2], {CH1, CH2}, [ev("ON", CH2), ev("DEL", CH2)])
    assert gone.listed == (CH1,) and gone.status == {}


def test_the_granted_time_is_bounded() -> None:
    assert catsub.granted_s("") == catsub.SUBSCRIBE_S
    assert catsub.granted_s("600") == 600
    assert catsub.granted_s("1") == catsub.MIN_GRANTED_S
    assert catsub.granted_s("999999999") == catsub.MAX_GRANTED_S
    assert catsub.granted_s("9" * 5000) == catsub.SUBSCRIBE_S  # unreadable: what was asked
    assert catsub.granted_s("-5") == catsub.SUBSCRIBE_S
    assert catsub.granted_s("0") is None
    assert catsub.renew_in(3600) == 2400


# -- the shell's refusals, through the real DeviceAccess and CatalogSubscriber (fake sockets/rows)


class Rows(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.applied: list[tuple[Any, ...]] = []

    def apply_changes(
        self, device_id: str, upsert: Any, status: Any, listed: Any
    ) -> dict[str, Any]:
        self.applied.append((device_id, upsert, status, listed))
        return {CH1: status.get(CH1, ON)}


def notify_request(call_id: str, body: bytes, state: str = "active;expires=60") -> sip.SipMessage:
    msg = sip.SipMessage(method="NOTIFY", uri=f"sip:{SERVER}@127.0.0.1:5060")
    msg.add("Via", f"SIP/2.0/UDP 10.1.2.3:5060;branch={sip.new_branch()}")
    msg.add("From", f"<sip:{DEV}@{REALM}>;tag=d")
    msg.add("To", f"<sip:{SERVER}@{REALM}>;tag=v")
    msg.add("Call-ID", call_id)
    msg.add("CSeq", "1 NOTIFY")
    msg.add("Event", "Catalog")
    msg.add("Subscription-State", state)
    msg.body = body
    return msg


def test_notifies_outside_the_subscription_change_nothing_and_a_silent_device_is_left() -> None:
    """Forged (no subscription, another Call-ID), another event package, malformed, after
    the device ended it: each refused, no row written, the device not even counted as heard
    from. A device that never answers the SUBSCRIBE is not subscribed (periodic query)."""

    async def run() -> None:
        transport, rows = FakeTransport(), Rows()
        access = DeviceAccess(cast(Any, transport), rows, SERVER, REALM, "127.0.0.1")
        subs = CatalogSubscriber(access)
        access.subscriptions = subs
        here = ("10.1.2.3", 5060)
        reg = register(DEV, "<sip:d@10.1.2.3:5060>")
        await access.on_request(Inbound(reg, here, None))
        nonce = nonce_of(transport.replies[-1].get("WWW-Authenticate"))
        reg = register(DEV, "<sip:d@10.1.2.3:5060>", authorization(nonce))
        await access.on_request(Inbound(reg, here, None))
        assert transport.replies[-1].status == 200
        dev = access.devices[DEV]
        dev.channel_codes, dev.channel_status = [CH1], {CH1: ON}
        await asyncio.sleep(0.05)  # the SUBSCRIBE went and got nothing back (FakeTransport)
        assert DEV not in subs.subs  # not subscribed: the periodic query stays
        assert len(transport.requests) == 2  # the Catalog query and the SUBSCRIBE, nothing more

        async def send(msg: sip.SipMessage) -> int:
            await access.on_request(Inbound(msg, here, None))
            return transport.replies[-1].status

        off = notify(item(CH1, "OFF"))
        seen = dev.last_seen
        assert await send(notify_request("not-a-subscription", off)) == 481  # none held
        subs.subs[DEV] = Subscription(DEV, dev.epoch, "sub-1", "t")  # one held now
        assert await send(notify_request("forged", off)) == 481  # another Call-ID
        forged_event = notify_request("sub-1", off)
        forged_event.set("Event", "presence")
        assert await send(forged_event) == 489
        assert await send(notify_request("sub-1", b"<Notify>")) == 400
        assert rows.applied == [] and dev.channel_status == {CH1: ON} and dev.last_seen == seen
        assert await send(notify_request("sub-1", off)) == 200  # the real one
        assert dev.channel_status == {CH1: OFF} and len(rows.applied) == 1
        # the device ends it (no body): taken; anything later in that dialog is refused
        assert await send(notify_request("sub-1", b"", "terminated;reason=timeout")) == 200
        assert DEV not in subs.subs
        assert await send(notify_request("sub-1", notify(item(CH1, "ON")))) == 481
        assert dev.channel_status == {CH1: OFF} and len(rows.applied) == 1
        await subs.close()

    asyncio.run(run())
