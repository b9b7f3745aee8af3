"""GB/T 28181 signalling, pure: SIP parsing with real peers' quirks, digest, MANSCDP, SDP."""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest

from controller.gb28181 import digest, manscdp, sdp, sip
from controller.gb28181.transport import Inbound, SipTransport, lenient_reply

INVITE = (
    "INVITE sip:62120200001320000001@6212000000 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.2:5060;rport;branch=z9hG4bK1\r\n"
    "From: <sip:34020000002000000001@3402000000>;tag=abc\r\n"
    "To: <sip:62120200001320000001@6212000000>\r\n"
    "Call-ID: 42@10.0.0.2\r\n"
    "CSeq: 20 INVITE\r\n"
    "Contact: <sip:34020000002000000001>\r\n"
    "Content-Type: APPLICATION/SDP\r\n"
    "Subject: 62120200001320000001:0100000001,34020000002000000001:0\r\n"
    "Content-Length: {n}\r\n\r\n{body}"
)
OFFER = (
    "v=0\r\no=34020000002000000001 0 0 IN IP4 10.0.0.2\r\ns=Play\r\n\r\n"
    "c=IN IP4 10.0.0.2\r\nt=0 0\r\nm=video 30000 RTP/AVP 96 98 97\r\n"
    "a=recvonly\r\na=rtpmap:96 PS/90000\r\na=rtpmap:98 H264/90000\r\n\r\ny=0100000001\r\nf=\r\n"
)


def invite(body: str = OFFER) -> bytes:
    return INVITE.format(n=len(body.encode()), body=body).encode()


def test_a_request_parses_with_compact_and_odd_case_headers_and_no_contact_host() -> None:
    msg = sip.parse(invite())
    assert msg.method == "INVITE" and msg.cseq == (20, "INVITE")
    assert sip.uri_user(msg.uri) == "62120200001320000001"
    assert sip.uri_user(msg.get("from")) == "34020000002000000001"
    assert sip.param(msg.get("From"), "tag") == "abc"
    assert sip.uri_hostport(msg.get("Contact")) == ("", 0)  # caller falls back to the source
    compact = b"OPTIONS sip:a@b SIP/2.0\nv: SIP/2.0/UDP h;branch=z9hG4bKx\nf: <sip:x@y>\n"
    compact += b"t: <sip:a@b>\ni: c1\nCSeq: 1 OPTIONS\n\n"
    assert sip.parse(compact).call_id == "c1"  # LF-only lines, compact names


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"garbage", 400),
        (b"INVITE sip:a@b SIP/3.0\r\nVia: x\r\n\r\n", 505),
        (b"INVITE http://a SIP/2.0\r\n\r\n", 400),
        (invite().replace(b"CSeq: 20 INVITE", b"CSeq: x"), 400),
        (invite().replace(b"Call-ID: 42@10.0.0.2\r\n", b""), 400),
        (invite().replace(b"Content-Length: ", b"Content-Length: 9"), 400),
        (b"MESSAGE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 30_000 + b"\r\n", 413),
    ],
)
def test_malformed_messages_are_refused_with_the_status_to_answer(data: bytes, status: int) -> None:
    with pytest.raises(sip.SipError) as err:
        sip.parse(data)
    assert err.value.status == status and err.value.message


def test_a_refused_request_still_gets_an_answer_built_from_what_could_be_read() -> None:
    bad = invite().replace(b"CSeq: 20 INVITE", b"CSeq: x")
    reply = (lenient_reply(bad, 400, "malformed CSeq") or b"").decode()
    assert reply.startswith("SIP/2.0 400 malformed CSeq\r\n")
    assert "Call-ID: 42@10.0.0.2\r\n" in reply and "branch=z9hG4bK1" in reply
    assert lenient_reply(b"SIP/2.0 200 OK\r\n\r\n", 400, "x") is None
    assert lenient_reply(b"\x00\xff junk", 400, "x") is None


def test_tcp_stream_framing_by_content_length() -> None:
    one = invite()
    frames, rest, error = sip.split_stream(b"\r\n\r\n" + one + one[:50])
    assert frames == [one] and rest == one[:50] and not error
    frames, rest, error = sip.split_stream(b"X" * (sip.MAX_MESSAGE_BYTES + 1))
    assert error and not frames


def test_responses_echo_the_transaction_and_add_a_to_tag() -> None:
    req = sip.parse(invite())
    ok = sip.parse(sip.response(req, 200, to_tag="t1", body=b"v=0\r\n").to_bytes())
    assert ok.status == 200 and ok.call_id == req.call_id and ok.cseq == (20, "INVITE")
    assert sip.param(ok.get("To"), "tag") == "t1" and ok.body == b"v=0\r\n"


def test_digest_answers_a_stateless_challenge_per_rfc_2617() -> None:
    ch = digest.parse_challenge('Digest realm="3402000000", nonce="n1", qop="auth,auth-int"')
    assert ch.qop == "auth"
    header = digest.authorization(ch, "u", "pw", "REGISTER", "sip:s@d", cnonce="c")
    ha1 = hashlib.md5(b"u:3402000000:pw").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:s@d").hexdigest()
    want = hashlib.md5(f"{ha1}:n1:00000001:c:auth:{ha2}".encode()).hexdigest()
    assert f'response="{want}"' in header and 'nonce="n1"' in header
    plain = digest.parse_challenge("Digest realm=r,nonce=n2")  # unquoted values
    no_qop = hashlib.md5(f"{hashlib.md5(b'u:r:pw').hexdigest()}:n2:{ha2}".encode()).hexdigest()
    assert no_qop in digest.authorization(plain, "u", "pw", "REGISTER", "sip:s@d")
    for bad in ("Basic realm=x", 'Digest realm="x"', 'Digest nonce="n", algorithm=SHA-512'):
        with pytest.raises(digest.DigestError):
            digest.parse_challenge(bad)


def test_manscdp_in_gb2312_parses_and_answers_encode_chinese_names() -> None:
    body = (
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Query><CmdType>Catalog</CmdType>'
        "<SN>7</SN><DeviceID>62120000002000000001</DeviceID><Name>陇南</Name></Query>"
    ).encode("gb2312")
    q = manscdp.parse(body)
    assert (q.root, q.cmd_type, q.sn, q.fields["Name"]) == ("Query", "Catalog", "7", "陇南")
    item = manscdp.CatalogItem("62120200001320000001", "武都区 东关村 1号", "p", "621202")
    page = manscdp.catalog_page("7", "62120000002000000001", 1, [item])
    assert page.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert "东关村".encode("gb2312") in page
    again = manscdp.decode(page)
    assert "<SumNum>1</SumNum>" in again and "<Status>ON</Status>" in again


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<Query><SN>1</SN></Query>", 400),
        (b"<Query><CmdType>Catalog</Query>", 400),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Query><CmdType>&a;</CmdType></Query>', 400),
        (b"<Query><CmdType>" + b"A" * manscdp.MAX_XML_BYTES + b"</CmdType></Query>", 413),
        (b'<?xml version="1.0" encoding="UTF-8"?><Query><CmdType>\xff\xfe\xfd</CmdType>', 400),
    ],
)
def test_bad_xml_is_refused_before_or_by_the_parser(body: bytes, status: int) -> None:
    with pytest.raises(manscdp.XmlError) as err:
        manscdp.parse(body)
    assert err.value.status == status


def test_sdp_offer_with_blank_lines_gives_address_port_and_ssrc() -> None:
    offer = sdp.parse_offer(OFFER.encode())
    assert (offer.session, offer.address, offer.port) == ("Play", "10.0.0.2", 30000)
    assert (offer.transport, offer.ssrc, offer.payload_type) == ("udp", "0100000001", 96)
    tcp = OFFER.replace("RTP/AVP 96 98 97", "TCP/RTP/AVP 96").replace(
        "a=recvonly", "a=setup:active"
    )
    assert sdp.parse_offer(tcp.encode()).transport == "tcp-passive"
    tcp = tcp.replace("setup:active", "setup:passive")
    assert sdp.parse_offer(tcp.encode()).transport == "tcp-active"
    back = sdp.parse_offer(
        OFFER.replace("s=Play", "s=Download")
        .replace("t=0 0", "t=1767225600 1767225660")
        .replace("a=recvonly", "a=downloadspeed:4")
        .encode()
    )
    assert (back.session, back.start_s, back.end_s, back.speed) == (
        "Download",
        1767225600,
        1767225660,
        4.0,
    )
    answer = sdp.answer(offer, "62120200001320000001", "10.0.0.9", 40000, "0100000001").decode()
    assert "m=video 40000 RTP/AVP 96" in answer and "y=0100000001" in answer


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (("s=Play", "s=Talk"), 488),
        (("m=video 30000", "m=video 0"), 400),
        (("m=video 30000 RTP/AVP", "m=video 30000 RTP/SAVP"), 488),
        (("y=0100000001", "y=99999999999"), 400),
        (("s=Play", "s=Playback"), 400),  # no time range
    ],
)
def test_unusable_offers_are_refused(change: tuple[str, str], status: int) -> None:
    with pytest.raises(sdp.SdpError) as err:
        sdp.parse_offer(OFFER.replace(*change).encode())
    assert err.value.status == status


def test_closing_the_transport_ends_handlers_still_running() -> None:
    """A handler still awaiting (say a catalog read) when the controller stops is cancelled and
    awaited by `aclose`, so the loop closes with no task left pending."""
    ended: list[str] = []

    async def main() -> None:
        started = asyncio.Event()

        async def handler(_inbound: Inbound) -> None:
            started.set()
            try:
                await asyncio.get_running_loop().create_future()  # never answered
            except asyncio.CancelledError:
                ended.append("cancelled")
                raise

        transport = SipTransport(handler)
        addr = await transport.listen("127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(invite(), addr)
            await asyncio.wait_for(started.wait(), 5.0)
        await transport.aclose()
        assert ended == ["cancelled"]  # by aclose itself, not by asyncio.run's clean-up

    asyncio.run(main())
