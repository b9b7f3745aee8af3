"""Reaching a device that registered over TCP once its own connection is gone: decisions only.

NVRs set to TCP signalling (Hikvision, Dahua) listen on their SIP port, and RFC 3261 §18
lets a client open a new connection to a request's target when none is up: so when Vigil
must send a device a request (an INVITE, a query, a BYE) and the connection the device
registered over is closed, Vigil connects to the device itself (`SipTransport.reach`).

Where to: the host is always the address the device's *authenticated* REGISTER came from,
the port is the one its Contact names (5060 when it names none). A Contact naming another
host is never dialed: behind NAT it is a private address Vigil cannot reach anyway, and
anywhere else it is a claim only; honouring it would let whoever holds one device's password
(devices sit in the field) make Vigil open connections to any host on its networks (SSRF).
Only the port is the device's to choose, and only for connections back to its own address.
The Contact is read only from a REGISTER that passed the digest check (`devices`); a refused
or unauthenticated REGISTER changes nothing.

Limits (so unreachable devices cost bounded time and sockets, and never hold up others):
a connect gives up after `CONNECT_S` (an INVITE's `invite_answer_s` when shorter), at most
`MAX_CONNECTING` connects run at once and `MAX_OPEN` connections Vigil opened stay open at
once (beyond: refused at once, said why, the device not blamed), and a connection Vigil
opened is closed after `IDLE_S` without a byte either way.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from controller.gb28181 import sip

Addr = tuple[str, int]
SIP_PORT = 5060  # RFC 3261 §19.1.2: a sip: URI without a port
CONNECT_S = 3.0
IDLE_S = 60.0
MAX_OPEN = 128
MAX_CONNECTING = 16


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect to a device, and why not exactly its Contact ("" when it is)."""

    addr: Addr
    note: str = ""


def target(contact: str, source: Addr) -> Target:
    """The address to dial for a device whose authenticated REGISTER came from `source` with
    this Contact header value: `source`'s host, the Contact's port (5060 when none)."""
    host, port = sip.uri_hostport(contact)
    port = port if 0 < port <= 65535 else SIP_PORT
    where = (source[0], port)
    if not host:
        return Target(where, "Contact names no host: the address it registered from")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return Target(where, f"Contact host {host[:64]!r} is a name: not resolved, "
                             "the address it registered from")  # fmt: skip
    if str(ip) == source[0]:
        return Target(where)
    if not ip.is_global:  # private, loopback, link-local, unspecified, reserved
        return Target(where, f"Contact host {ip} is private (NAT): the address it registered "
                             "from")  # fmt: skip
    return Target(where, f"Contact host {ip} is not where it registered from: never dialed")


def refuse(open_now: int, connecting_now: int) -> str:
    """Why one more connection to a device may not be opened now ("": it may)."""
    if connecting_now >= MAX_CONNECTING:
        return f"{connecting_now} connections to devices are being opened already"
    if open_now >= MAX_OPEN:
        return f"{open_now} connections Vigil opened to devices are open already"
    return ""


def connect_s(answer_s: float | None) -> float:
    """How long a connect may take: `CONNECT_S`, or the INVITE's answer time when shorter (a
    viewer waits for it)."""
    return CONNECT_S if answer_s is None else max(0.1, min(CONNECT_S, answer_s))


def idle_left(last_activity: float, now: float) -> float:
    """Seconds until a connection Vigil opened is closed for idleness (<= 0: close it)."""
    return last_activity + IDLE_S - now


def failure(exc: BaseException, connect_s: float) -> str:
    """A connect's failure in a few words (a viewer reads them)."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {connect_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))[:100]
