"""The SDP of a GB/T 28181 INVITE (§9.2, appendix F): parse the offer, write the answer. Pure.

GB adds two lines to RFC 4566: `y=` (the 10-digit SSRC the receiver expects: the media must
carry exactly it) and `f=` (media parameters, ignored here). `s=` names the session kind:
Play (live), Playback (a time range at 1x) or Download (a time range, as fast as allowed);
`t=` is then the range in Unix seconds. Real peers send blank lines, LF-only line ends and a
stray space around `=`: all tolerated. Media over TCP (`TCP/RTP/AVP`) says who connects with
`a=setup`: the offerer's `passive` means Vigil connects to it (active), `active` means the
offerer connects to the port in Vigil's answer (passive).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SDP_BYTES = 8 * 1024


class SdpError(ValueError):
    """The offer cannot be served; `status` is the SIP response (400, 488)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Offer:
    session: str  # "Play", "Playback" or "Download"
    address: str  # where the receiver wants the media
    port: int
    transport: str  # "udp", "tcp-active" (Vigil connects) or "tcp-passive" (Vigil listens)
    ssrc: str  # 10 digits; "" when the offer has no y= line
    payload_type: int  # the PS payload type the receiver named (96 in practice)
    start_s: int = 0  # Playback/Download range, Unix seconds
    end_s: int = 0
    speed: float = 1.0  # Download's a=downloadspeed


def parse_offer(body: bytes) -> Offer:
    if len(body) > MAX_SDP_BYTES:
        raise SdpError(400, f"SDP of {len(body)} bytes is over {MAX_SDP_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("gb18030", errors="replace")
    lines: list[tuple[str, str]] = []
    for raw in text.splitlines():
        key, sep, value = raw.strip().partition("=")
        if sep and len(key.strip()) == 1:
            lines.append((key.strip(), value.strip()))
    first = {k: v for k, v in reversed(lines)}
    session = first.get("s", "Play").strip() or "Play"
    kinds = {"play": "Play", "playback": "Playback", "download": "Download"}
    if session.lower() not in kinds:
        raise SdpError(488, f"session {session[:20]!r} is not Play, Playback or Download")
    session = kinds[session.lower()]
    media = [v for k, v in lines if k == "m" and v.startswith("video")]
    if not media:
        raise SdpError(488, "the offer has no m=video line")
    parts = media[0].split()
    if len(parts) < 4 or not parts[1].isdigit() or not 0 < int(parts[1]) <= 65535:
        raise SdpError(400, f"malformed m= line {media[0][:60]!r}")
    port, proto = int(parts[1]), parts[2].upper()
    attrs = [v for k, v in lines if k == "a"]
    ps_type = _ps_payload(attrs, parts[3:])
    if proto == "RTP/AVP":
        transport = "udp"
    elif proto in ("TCP/RTP/AVP", "RTP/AVP/TCP"):
        setup = next((a.split(":", 1)[1].strip() for a in attrs if a.startswith("setup:")), "")
        transport = "tcp-passive" if setup.lower() == "active" else "tcp-active"
    else:
        raise SdpError(488, f"media transport {parts[2][:20]!r} is not RTP/AVP or TCP/RTP/AVP")
    address = _address(first.get("c", ""), first.get("o", ""))
    if not address:
        raise SdpError(400, "the offer has no connection address")
    ssrc = first.get("y", "")
    if ssrc and (not ssrc.isdigit() or len(ssrc) > 10 or int(ssrc) > 0xFFFFFFFF):
        raise SdpError(400, f"y= SSRC {ssrc[:20]!r} is not a 32-bit decimal number")
    start_s = end_s = 0
    if session != "Play":
        t = first.get("t", "0 0").split()
        if len(t) != 2 or not all(x.isdigit() for x in t):
            raise SdpError(400, f"malformed t= line {first.get('t', '')[:40]!r}")
        start_s, end_s = int(t[0]), int(t[1])
        if not 0 < start_s < end_s:
            raise SdpError(400, f"time range {start_s}..{end_s} is empty or reversed")
    speed = 1.0
    for a in attrs:
        if a.startswith("downloadspeed:"):
            try:
                speed = min(max(float(a.split(":", 1)[1]), 0.25), 32.0)
            except ValueError:
                pass
    return Offer(session, address, port, transport, ssrc, ps_type, start_s, end_s, speed)


def _ps_payload(attrs: list[str], formats: list[str]) -> int:
    for a in attrs:
        if a.startswith("rtpmap:"):
            pt, _, name = a[len("rtpmap:") :].partition(" ")
            if name.upper().startswith("PS/") and pt.isdigit():
                return int(pt)
    if "96" in formats or not formats:
        return 96
    raise SdpError(488, "the offer names no PS payload type (PS/90000)")


def _address(c_line: str, o_line: str) -> str:
    for line in (c_line, o_line):
        parts = line.split()
        if len(parts) >= 3 and parts[-3] == "IN" and parts[-2] in ("IP4", "IP6"):
            return parts[-1]
    return ""


def answer(offer: Offer, local_id: str, address: str, port: int, ssrc: str) -> bytes:
    proto = "RTP/AVP" if offer.transport == "udp" else "TCP/RTP/AVP"
    lines = [
        "v=0",
        f"o={local_id} 0 0 IN IP4 {address}",
        f"s={offer.session}",
        f"c=IN IP4 {address}",
        f"t={offer.start_s} {offer.end_s}",
        f"m=video {port} {proto} {offer.payload_type}",
        "a=sendonly",
        f"a=rtpmap:{offer.payload_type} PS/90000",
    ]
    if offer.transport != "udp":
        setup = "passive" if offer.transport == "tcp-passive" else "active"
        lines += [f"a=setup:{setup}", "a=connection:new"]
    lines += [f"y={ssrc}", "f="]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
