"""Reaching a device over TCP when its own connection is closed: where to dial, the limits,
and the rule that only an authenticated REGISTER's Contact is ever dialed (SSRF)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from controller.gb28181 import dial, sip
from controller.gb28181.access import Known, ha1_of
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.transport import Addr, Inbound
from tests.unit.test_gb28181_access import DEV, REALM, authorization, nonce_of

SERVER = "62120000002000000002"
PUBLIC = ("203.0.113.7", 40001)  # where a device behind NAT registered from (TEST-NET-3)


@pytest.mark.parametrize(
    ("contact", "source", "want", "note"),
    [
        # its own address: the Contact as is (the device's listening port, not the source's)
        ("<sip:d@10.1.2.3:5070;transport=tcp>", ("10.1.2.3", 51234), ("10.1.2.3", 5070), ""),
        ("<sip:d@203.0.113.7:5060>", PUBLIC, ("203.0.113.7", 5060), ""),
        # behind NAT: a private Contact is replaced by the address it registered from
        ("<sip:d@192.168.1.64:5060>", PUBLIC, ("203.0.113.7", 5060), "private"),
        ("<sip:d@127.0.0.1:5099>", PUBLIC, ("203.0.113.7", 5099), "private"),
        ("<sip:d@169.254.0.9:5061>", PUBLIC, ("203.0.113.7", 5061), "private"),
        ("<sip:d@0.0.0.0:5062>", PUBLIC, ("203.0.113.7", 5062), "private"),
        # another public host: a claim only, never dialed (SSRF)
        ("<sip:d@1.1.1.1:5060>", PUBLIC, ("203.0.113.7", 5060), "never dialed"),
        ("<sip:d@8.8.8.8:53>", PUBLIC, ("203.0.113.7", 53), "never dialed"),
        # a name is not resolved (DNS would be the device's choice of host again)
        ("<sip:d@metadata.internal:80>", PUBLIC, ("203.0.113.7", 80), "a name"),
        # no host, no port, no Contact, junk, a port out of range: the default port 5060
        ("<sip:34020000001320000001>", PUBLIC, ("203.0.113.7", 5060), "no host"),
        ("<sip:d@203.0.113.7>", PUBLIC, ("203.0.113.7", 5060), ""),
        ("", PUBLIC, ("203.0.113.7", 5060), "no host"),
        ("\x00garbage<<>>", PUBLIC, ("203.0.113.7", 5060), "no host"),
        ("<sip:d@203.0.113.7:99999>", PUBLIC, ("203.0.113.7", 5060), ""),
        ("<sip:d@203.0.113.7:0>", PUBLIC, ("203.0.113.7", 5060), ""),
        ("<sip:d@[2606:4700::1111]:5060>", PUBLIC, ("203.0.113.7", 5060), "not where"),
        ("<sip:d@[fd00::1]:5060>", PUBLIC, ("203.0.113.7", 5060), "private"),
        ("<sip:d@" + "9" * 5000 + ":5060>", PUBLIC, ("203.0.113.7", 5060), "a name"),
    ],
)
def test_the_host_dialed_is_always_where_the_device_registered_from(
    contact: str, source: Addr, want: Addr, note: str
) -> None:
    chosen = dial.target(contact, source)
    assert chosen.addr == want
    assert (note in chosen.note) if note else chosen.note == ""
    assert len(chosen.note) < 200  # a log line, whatever the Contact


def test_connects_are_limited_in_flight_and_open() -> None:
    assert dial.refuse(0, 0) == ""
    assert dial.refuse(dial.MAX_OPEN - 1, dial.MAX_CONNECTING - 1) == ""
    assert "being opened" in dial.refuse(0, dial.MAX_CONNECTING)
    assert "open already" in dial.refuse(dial.MAX_OPEN, 0)


def test_a_connect_waits_no_longer_than_a_viewer_would() -> None:
    assert dial.connect_s(None) == dial.CONNECT_S
    assert dial.connect_s(1.0) == 1.0  # an INVITE's invite_answer_s
    assert dial.connect_s(30.0) == dial.CONNECT_S
    assert dial.connect_s(0.0) == 0.1


def test_a_failed_connect_is_said_in_a_few_words() -> None:
    assert dial.failure(TimeoutError(), 2.0) == "no answer in 2 s"
    assert dial.failure(ConnectionRefusedError(111, "Connect call failed"), 3) == (
        "connection refused"
    )
    assert dial.failure(OSError(113, "No route to host"), 3) == "No route to host"
    assert len(dial.failure(OSError("x" * 500), 3)) == 100


def test_a_connection_vigil_opened_closes_after_it_idled() -> None:
    assert dial.idle_left(100.0, 100.0) == dial.IDLE_S
    assert dial.idle_left(100.0, 100.0 + dial.IDLE_S) <= 0


# -- the rule, where it is enforced: DeviceAccess takes a Contact from authenticated REGISTERs


class FakeTransport:
    """Records answers; requests to devices (the Catalog query) get none."""

    def __init__(self) -> None:
        self.local = ("127.0.0.1", 5060)
        self.replies: list[sip.SipMessage] = []
        self.requests: list[tuple[Addr, bool, Addr | None]] = []

    def reply(self, inbound: Inbound, response: sip.SipMessage) -> None:
        self.replies.append(response)

    async def request(
        self, msg: sip.SipMessage, peer: Addr, tcp: bool, dial: Addr | None = None
    ) -> None:
        self.requests.append((peer, tcp, dial))


class FakeBackend:
    def __init__(self) -> None:
        self.rows = {DEV: Known(DEV, ha1_of(DEV, REALM, "pw"), REALM)}

    def known(self, device_id: str) -> Known | None:
        return self.rows.get(device_id)

    def registered(self, device_id: str, contact: str, expires_s: int) -> None:
        pass

    def set_channels(self, device_id: str, channels: Any) -> int:
        return 0

    def own_channels(self, device_id: str) -> dict[str, str]:
        return {}

    def apply_changes(
        self, device_id: str, upsert: Any, status: Any, listed: Any
    ) -> dict[str, str]:
        return {}

    def seen(self, device_id: str) -> None:
        pass

    def unanswered(self, device_id: str) -> None:
        pass

    def elsewhere(self, device_id: str) -> str:
        return ""


def register(user: str, contact: str, auth: str = "", expires: str = "3600") -> sip.SipMessage:
    msg = sip.SipMessage(method="REGISTER", uri=f"sip:{SERVER}@{REALM}")
    msg.add("Via", f"SIP/2.0/TCP 10.9.9.9:5060;branch={sip.new_branch()}")
    msg.add("From", f"<sip:{user}@{REALM}>;tag=1")
    msg.add("To", f"<sip:{user}@{REALM}>")
    msg.add("Call-ID", "reg-1")
    msg.add("CSeq", "1 REGISTER")
    msg.add("Contact", contact)
    msg.add("Expires", expires)
    if auth:
        msg.add("Authorization", auth)
    return msg


def test_only_an_authenticated_register_sets_where_vigil_dials() -> None:
    async def run() -> tuple[DeviceAccess, FakeTransport]:
        transport = FakeTransport()
        access = DeviceAccess(
            cast(Any, transport), FakeBackend(), SERVER, REALM, "127.0.0.1"
        )  # the real DeviceAccess and digest check; only the sockets and rows are fakes
        conn = cast(Any, object())  # over TCP: a connection object (never written here)
        here = ("10.1.2.3", 51000)
        forged = "<sip:x@10.1.2.3:6379>"  # the port an attacker wants Vigil to open

        async def send(msg: sip.SipMessage, source: Addr = here) -> int:
            await access.on_request(Inbound(msg, source, conn))
            return transport.replies[-1].status

        # unknown code, no challenge handed out: 403; nothing kept
        assert await send(register("62120200001110000099", forged)) == 403
        # a known code without a digest: challenged, nothing kept
        assert await send(register(DEV, forged)) == 401
        nonce = nonce_of(transport.replies[-1].get("WWW-Authenticate"))
        # a wrong password, a forged digest, a nonce Vigil never issued: 403, nothing kept
        assert await send(register(DEV, forged, authorization(nonce, "wrong"))) == 403
        bogus = authorization(nonce).replace('response="', 'response="0')
        assert await send(register(DEV, forged, bogus)) == 403
        assert await send(register(DEV, forged, authorization("f" * 30))) == 403
        assert access.devices == {}
        # the device itself: its Contact's port, on the address it registered from
        good = "<sip:d@10.1.2.3:5070;transport=tcp>"
        assert await send(register(DEV, good, authorization(nonce))) == 200
        dev = access.devices[DEV]
        assert dev.tcp and dev.dial == ("10.1.2.3", 5070) and dev.addr == here
        # someone else, with the device's code but not its password, from elsewhere: nothing
        # changes (a forged REGISTER of a registered code)
        elsewhere = ("10.66.0.1", 40000)
        assert await send(register(DEV, "<sip:d@10.66.0.1:22>"), elsewhere) == 401
        wrong = authorization(nonce, "wrong")
        assert await send(register(DEV, "<sip:d@10.66.0.1:22>", wrong), elsewhere) == 403
        # the right digest over an expired nonce: challenged again (stale), nothing changes
        old = access.nonces.issue(time.time() - 3600)
        assert await send(register(DEV, "<sip:d@10.66.0.1:22>", authorization(old))) == 401
        assert "stale=true" in transport.replies[-1].get("WWW-Authenticate")
        assert dev.dial == ("10.1.2.3", 5070) and dev.addr == here
        # the Catalog query went with that address as its fall-back route
        await asyncio.sleep(0)
        assert transport.requests == [(here, True, ("10.1.2.3", 5070))]
        # over UDP there is nothing to dial
        udp = Inbound(register(DEV, good, authorization(nonce)), here, None)
        await access.on_request(udp)
        assert transport.replies[-1].status == 200 and access.devices[DEV].dial is None
        return access, transport

    asyncio.run(run())
