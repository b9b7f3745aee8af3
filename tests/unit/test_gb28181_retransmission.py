"""A request retransmitted over UDP is handled once, however early the copy comes.

A device (SIPp, real NVRs) retransmits a REGISTER after 500 ms without an answer (RFC 3261
T1). Before, a copy arriving while the first was still being handled was handled again and
got a second, different 401 (another To tag): SIPp took it for an unexpected message and
aborted the registration (seen in CI under load). No sockets: the transport's sends go nowhere.
"""

from __future__ import annotations

import asyncio

from controller.gb28181 import sip
from controller.gb28181.transport import Inbound, SipTransport

REGISTER = (
    b"REGISTER sip:62120000002000000007@6212000000 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:40784;rport;branch=z9hG4bK-26608-1-0\r\n"
    b"From: <sip:62120200001110000071@6212000000>;tag=26608r1\r\n"
    b"To: <sip:62120200001110000071@6212000000>\r\n"
    b"Call-ID: 1-26608@127.0.0.1\r\nCSeq: 1 REGISTER\r\nExpires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_a_copy_during_handling_and_after_the_answer_is_not_handled_again() -> None:
    handled: list[Inbound] = []
    sent: list[bytes] = []

    async def main() -> None:
        release = asyncio.Event()

        async def slow(inbound: Inbound) -> None:  # answers only after the copies arrived
            handled.append(inbound)
            await release.wait()
            transport.reply(inbound, sip.response(inbound.msg, 401, to_tag="t1"))

        transport = SipTransport(slow)
        transport._send_raw = lambda data, peer, tcp: sent.append(data)  # type: ignore[method-assign]
        peer = ("127.0.0.1", 40784)
        transport.datagram_received(REGISTER, peer)
        await asyncio.sleep(0.01)
        transport.datagram_received(REGISTER, peer)  # T1 copy, still being handled
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.sleep(0.01)
        transport.datagram_received(REGISTER, peer)  # a copy after the answer
        await asyncio.sleep(0.01)
        await transport.aclose()

    asyncio.run(main())
    assert len(handled) == 1
    assert len(sent) == 2 and sent[0] == sent[1]  # the answer, then the same bytes again
