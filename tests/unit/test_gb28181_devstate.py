"""A GB/T 28181 device's state in the fleet view (controller/gb28181/devstate.py), and the
SIP transport's INVITE that gives up quickly when the peer sends nothing back at all."""

from __future__ import annotations

import asyncio
import socket
import time

from controller.gb28181 import sip
from controller.gb28181.devstate import (
    SEEN_WRITE_S,
    DeviceState,
    Liveness,
    judge,
    moved,
    write_seen,
)
from controller.gb28181.transport import SipTransport

S = 1_000_000
NOW = 10_000 * S


def row(**kw: int) -> Liveness:
    base = dict(registered_us=NOW - 100 * S, expires_us=NOW + 3500 * S, last_seen_us=NOW - 20 * S,
                unanswered_us=0, revoked_us=0)  # fmt: skip
    base.update(kw)
    return Liveness(**base)


def test_a_registered_device_heard_from_lately_is_online() -> None:
    assert judge(row(), NOW, 180.0) == DeviceState(True, "")
    # keepalives are written at most every SEEN_WRITE_S: that much more is allowed
    assert judge(row(last_seen_us=NOW - int((180 + SEEN_WRITE_S - 1) * S)), NOW, 180.0).online


def test_each_way_of_being_offline_says_why() -> None:
    assert judge(row(registered_us=0, expires_us=0), NOW, 180.0) == DeviceState(
        None, "never registered"
    )
    assert judge(row(expires_us=0), NOW, 180.0) == DeviceState(False, "unregistered")
    assert judge(row(expires_us=NOW - 1), NOW, 180.0).reason == "registration expired"
    silent = judge(row(last_seen_us=NOW - 300 * S, registered_us=NOW - 400 * S), NOW, 180.0)
    assert silent == DeviceState(False, "no keepalive for 300 s")
    assert judge(row(revoked_us=NOW - S), NOW, 180.0).reason == "password revoked"


def test_an_unanswered_invite_counts_only_until_the_device_is_heard_from_again() -> None:
    assert judge(row(unanswered_us=NOW - S), NOW, 180.0) == DeviceState(
        False, "not answering INVITE"
    )
    assert judge(row(unanswered_us=NOW - 30 * S), NOW, 180.0).online  # a keepalive since


def test_keepalives_are_written_at_most_every_interval() -> None:
    assert write_seen(0.0, SEEN_WRITE_S)
    assert not write_seen(100.0, 100.0 + SEEN_WRITE_S - 0.1)


def test_a_device_registered_to_another_replica_has_moved() -> None:
    assert moved("replica-b", "replica-a")
    assert not moved("replica-a", "replica-a")
    assert not moved("", "replica-a")  # never registered (or before revision 0017)


def invite() -> sip.SipMessage:
    msg = sip.SipMessage(method="INVITE", uri="sip:62120200001310000001@127.0.0.1:9")
    msg.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={sip.new_branch()}")
    msg.add("From", "<sip:62120000002000000001@6212000000>;tag=a")
    msg.add("To", "<sip:62120200001310000001@6212000000>")
    msg.add("Call-ID", "c1")
    msg.add("CSeq", "1 INVITE")
    return msg


async def _invite(trying: bool, timeout_s: float = 3.0) -> tuple[float, bool, int]:
    """An INVITE to a UDP peer that says nothing (or only 100 Trying): how long it took."""

    async def nothing(_inbound: object) -> None:
        return None

    transport = SipTransport(nothing, timeout_s=timeout_s)
    await transport.listen("127.0.0.1", 0)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    got = 0

    async def device() -> None:
        nonlocal got
        while True:
            data, addr = await loop.sock_recvfrom(peer, 65536)
            got += 1
            if trying:
                peer.sendto(sip.response(sip.parse(data), 100).to_bytes(), addr)

    task = loop.create_task(device())
    start = time.monotonic()
    try:
        resp, heard = await transport.invite(invite(), peer.getsockname(), 1.0)
        assert resp is None
        return time.monotonic() - start, heard, got
    finally:
        task.cancel()
        transport.close()
        peer.close()


def test_an_invite_nobody_answers_gives_up_after_answer_s() -> None:
    took, heard, sent = asyncio.run(_invite(trying=False))
    assert not heard and 0.9 < took < 1.5, took
    assert sent == 2  # at 0 and 0.5 s (T1)


def test_an_invite_answered_100_trying_waits_the_whole_timeout_without_retransmitting() -> None:
    took, heard, sent = asyncio.run(_invite(trying=True, timeout_s=1.5))
    assert heard and 1.4 < took < 2.1, took  # the whole timeout, not answer_s (1 s)
    assert sent == 1


async def _invite_over_tcp() -> tuple[float, bool, bytes]:
    """A device connected over TCP (its own connection) that answers nothing."""

    async def nothing(_inbound: object) -> None:
        return None

    transport = SipTransport(nothing, timeout_s=3.0)
    host, port = await transport.listen("127.0.0.1", 0, tcp=True)
    reader, writer = await asyncio.open_connection(host, port)
    peer = writer.get_extra_info("sockname")[:2]
    await asyncio.sleep(0.05)  # accepted
    start = time.monotonic()
    try:
        resp, heard = await transport.invite(invite(), (str(peer[0]), int(peer[1])), 1.0, True)
        assert resp is None
        took = time.monotonic() - start
        got = await asyncio.wait_for(reader.read(65536), 1.0)
        return took, heard, got
    finally:
        writer.close()
        await transport.aclose()


def test_an_invite_over_a_devices_tcp_connection_gives_up_after_answer_s() -> None:
    took, heard, got = asyncio.run(_invite_over_tcp())
    assert got.startswith(b"INVITE sip:")  # sent on the connection the device opened
    assert not heard and 0.9 < took < 1.5, took
