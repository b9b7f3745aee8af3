"""One upper platform link: REGISTER with digest, re-register, keepalive (the imperative shell
around `cascade.RegisterPlan`).

The register dialog keeps one Call-ID and a rising CSeq (RFC 3261 §10.2.4), each attempt a
new branch. A 401 is answered once with its nonce; a 401 to the authenticated REGISTER is a
wrong password: logged as such (never the password or the digest) and retried only after the
plan's longest backoff.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from controller.config import UpperPlatformConfig
from controller.gb28181 import digest, manscdp, sip
from controller.gb28181.cascade import RegisterPlan
from controller.gb28181.sip import SipMessage
from controller.gb28181.transport import Addr, SipTransport

log = logging.getLogger("vigil.gb28181")
MAX_IDLE_S = 10.0  # the link looks at its plan at least this often


@dataclass(slots=True)
class UpperLink:
    cfg: UpperPlatformConfig
    password: str = field(repr=False)
    peer: Addr
    plan: RegisterPlan
    call_id: str = field(default_factory=lambda: secrets.token_hex(12))
    from_tag: str = field(default_factory=sip.new_tag)
    cseq: int = 0
    sn: int = 0
    registrations: int = 0
    state: str = "unregistered"

    @property
    def domain(self) -> str:
        return self.cfg.server_domain or self.cfg.server_id[:10]

    @property
    def tcp(self) -> bool:
        return self.cfg.transport == "tcp"

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq

    def next_sn(self) -> int:
        self.sn += 1
        return self.sn


def via(transport: SipTransport, link: UpperLink, host: str) -> str:
    proto = "TCP" if link.tcp else "UDP"
    return f"SIP/2.0/{proto} {host}:{transport.local[1]};rport;branch={sip.new_branch()}"


def new_request(
    transport: SipTransport, link: UpperLink, method: str, host: str, to_user: str
) -> SipMessage:
    uri = f"sip:{to_user}@{link.domain}"
    msg = SipMessage(method=method, uri=uri)
    msg.add("Via", via(transport, link, host))
    msg.add("From", f"<sip:{link.cfg.local_id}@{link.domain}>;tag={link.from_tag}")
    msg.add("To", f"<sip:{to_user}@{link.domain}>")
    msg.add("Call-ID", link.call_id if method == "REGISTER" else secrets.token_hex(12))
    msg.add("CSeq", f"{link.next_cseq()} {method}")
    msg.add("Max-Forwards", "70")
    msg.add("User-Agent", "Vigil")
    return msg


async def register(transport: SipTransport, link: UpperLink, host: str, now: float) -> bool:
    """One REGISTER round (with its challenge). True when the upper platform accepted it."""
    cfg = link.cfg
    expires = str(cfg.register_expiry_s)

    def build(auth: str = "") -> SipMessage:
        msg = new_request(transport, link, "REGISTER", host, cfg.local_id)
        msg.uri = f"sip:{cfg.server_id}@{link.domain}"
        msg.add("Contact", f"<sip:{cfg.local_id}@{host}:{transport.local[1]}>")
        msg.add("Expires", expires)
        if auth:
            msg.add("Authorization", auth)
        return msg

    resp = await transport.request(build(), link.peer, link.tcp)
    wrong_password = False
    if resp is not None and resp.status in (401, 407):
        header = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate")
        try:
            challenge = digest.parse_challenge(header)
        except digest.DigestError as exc:
            log.error("upper %s: cannot answer its challenge: %s", cfg.server_id, exc)
            link.plan.register_failed(now)
            link.state = f"challenge refused: {exc}"
            return False
        uri = f"sip:{cfg.server_id}@{link.domain}"
        auth = digest.authorization(challenge, cfg.local_id, link.password, "REGISTER", uri)
        resp = await transport.request(build(auth), link.peer, link.tcp)
        wrong_password = resp is not None and resp.status in (401, 407)
    if resp is not None and resp.status == 200:
        granted = resp.get("Expires")
        granted_s = int(granted) if granted.isdigit() else cfg.register_expiry_s
        link.plan.registered_ok(asyncio.get_running_loop().time(), granted_s)
        link.registrations += 1
        link.state = "registered"
        log.info("upper %s: registered for %d s", cfg.server_id, granted_s)
        return True
    wait = link.plan.register_failed(asyncio.get_running_loop().time(), wrong_password)
    if wrong_password:
        link.state = "wrong password"
        log.error(
            "upper %s: REGISTER refused after authentication: wrong password or id "
            "(local_id %s); retrying in %.0f s",
            cfg.server_id,
            cfg.local_id,
            wait,
        )
    else:
        what = "no answer" if resp is None else f"{resp.status} {resp.reason}"
        link.state = f"register failed: {what}"
        log.warning("upper %s: REGISTER failed (%s); retrying in %.0f s", cfg.server_id, what, wait)
    return False


async def keepalive(transport: SipTransport, link: UpperLink, host: str) -> None:
    loop = asyncio.get_running_loop()
    msg = new_request(transport, link, "MESSAGE", host, link.cfg.server_id)
    msg.add("Content-Type", "Application/MANSCDP+xml")
    msg.body = manscdp.keepalive(link.next_sn(), link.cfg.local_id)
    link.plan.keepalive_sent(loop.time())
    resp = await transport.request(msg, link.peer, link.tcp)
    if resp is None:
        if link.plan.keepalive_lost(loop.time()):
            link.state = "keepalives unanswered"
            log.warning("upper %s: keepalives unanswered; registering again", link.cfg.server_id)
    elif resp.status != 200:
        link.plan.keepalive_answered(False, loop.time())
        link.state = f"keepalive refused {resp.status}"
        log.warning(
            "upper %s: keepalive answered %d (it restarted?); registering again",
            link.cfg.server_id,
            resp.status,
        )
    else:
        link.plan.keepalive_answered(True, loop.time())


async def send_message(
    transport: SipTransport, link: UpperLink, host: str, body: bytes
) -> SipMessage | None:
    msg = new_request(transport, link, "MESSAGE", host, link.cfg.server_id)
    msg.add("Content-Type", "Application/MANSCDP+xml")
    msg.body = body
    return await transport.request(msg, link.peer, link.tcp)


async def run_link(
    transport: SipTransport, link: UpperLink, host: str, stop: asyncio.Event
) -> None:
    """Register and keep alive until `stop`, sleeping until the plan's next step is due: it
    shares the cascade's thread with the live streams, and a poll every 0.2 s (a `wait_for`
    task, its timer and cancellation each time) cost that thread ~0.1 % of a core."""
    loop = asyncio.get_running_loop()
    stopped = loop.create_task(stop.wait())
    try:
        while not stop.is_set():
            now = loop.time()
            try:
                if link.plan.register_due(now):
                    await register(transport, link, host, now)
                elif link.plan.keepalive_due(now):
                    await keepalive(transport, link, host)
            except Exception:
                log.exception("upper %s: registration step failed", link.cfg.server_id)
                link.plan.register_failed(loop.time())
            delay = min(max(link.plan.next_due() - loop.time(), 0.0), MAX_IDLE_S)
            await asyncio.wait([stopped], timeout=delay)
    finally:
        stopped.cancel()


async def unregister(transport: SipTransport, link: UpperLink, host: str) -> None:
    """REGISTER with Expires 0 at shutdown; many platforms never answer it, so wait briefly
    and do not retry a challenge."""
    msg = new_request(transport, link, "REGISTER", host, link.cfg.local_id)
    msg.uri = f"sip:{link.cfg.server_id}@{link.domain}"
    msg.add("Contact", "*")
    msg.add("Expires", "0")
    try:
        await asyncio.wait_for(transport.request(msg, link.peer, link.tcp), 1.0)
    except TimeoutError:
        log.info("upper %s: un-REGISTER not answered (normal for many)", link.cfg.server_id)
