"""GB/T 28181 devices over TCP signalling whose connection closed: Vigil connects to them.

SIPp (Debian `sip-tester`) plays an NVR set to TCP, as two processes because one SIPp cannot
close its connection and stay: the first registers over a connection it opens (`-t t1`,
`device_register_tcp_once.xml`) and exits, so that connection closes; the second listens on
the NVR's SIP port (`-t t1 -p PORT` with no remote host: SIPp as a TCP server,
`device_tcp_listen.xml`), the port the REGISTER's Contact named, not the one it registered
from. A console viewer (the live WebSocket route) of a channel makes Vigil connect there,
INVITE and ACK; GStreamer sends the PS/RTP and the viewer decodes the frames; after the
viewer left, the BYE goes over the same connection. Forged REGISTERs (an unknown code, a
wrong password) naming another port are refused and that port is never connected to. A
device that refuses the connection, or never answers it (a port whose accept queue is full:
the kernel drops the SYNs, as a firewall would), fails its viewer within seconds with the
reason, and another NVR's channel is played meanwhile. The transport's own rules (reuse of
the device's connection, one connect per address, the cap, the idle close) are driven from
Python on real sockets: they need timings and counts SIPp does not expose.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from controller.api.component import HttpComponent
from controller.api.routes.live import STATUS_S
from controller.assembly import Controller
from controller.clock import SystemClock
from controller.gb28181 import dial
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devplay import DevicePlay
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import Channel
from controller.gb28181.transport import DialError, Inbound, SipTransport
from controller.grants.policy import default_policy
from controller.users import create_user
from tests.integration.gb_device_support import REALM, device_controller, make_ps, send_ps
from tests.integration.gb_device_support import sipp_device as udp_device
from tests.integration.test_gb28181_support import SIPP_DIR, sipp_binary
from tests.integration.test_live_view import PASSWORD, decode, grant, read_media, session

SERVER_ID = "62120000002000000006"
NVR, CH1 = "62120200001110000061", "62120200001310000611"  # listens when its connection closed
GONE, CH_GONE = "62120200001110000062", "62120200001310000621"  # refuses the connection
HOLE, CH_HOLE = "62120200001110000063", "62120200001310000631"  # never answers it
NVR2, CH3 = "62120200001110000064", "62120200001310000641"  # over UDP, stays up
UNKNOWN = "62120200001110000069"
ANSWER_S = 1.0  # [gb28181] invite_answer_s: also how long a viewer's connect may take


@dataclass
class World:
    controller: Controller
    devices: DeviceAccess
    transport: SipTransport
    sip_port: int
    passwords: dict[str, str]
    tmp: Path
    base: str
    source: Path

    def register_once(self, nvr: str, password: str, contact_port: int, log: str) -> str:
        """SIPp registering `nvr` over TCP (Contact port `contact_port`) and exiting; its
        message log (the scenario must end well: 200, or a refusal it expects)."""
        path = self.tmp / log
        proc = subprocess.run(
            [sipp_binary(), f"127.0.0.1:{self.sip_port}", "-t", "t1", "-sf",
             str(SIPP_DIR / "device_register_tcp_once.xml"), "-oocsf",
             str(SIPP_DIR / "device_ooc_media.xml"), "-i", "127.0.0.1", "-p",
             str(free_tcp_port()), "-m", "1", "-nostdin", "-au", nvr, "-ap", password,
             "-key", "device", nvr, "-key", "server_id", SERVER_ID, "-key", "realm", REALM,
             "-key", "contact_port", str(contact_port), "-timeout", "20s", "-timeout_error",
             "-trace_msg", "-message_file", str(path)],
            capture_output=True, timeout=40, check=False, cwd=self.tmp,
        )  # fmt: skip
        messages = path.read_text(errors="replace") if path.exists() else ""
        assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()[-2000:] + messages
        return messages

    def play(self, nvr: str, code: str) -> DevicePlay | None:
        supervisor = self.controller.gb28181.recording if self.controller.gb28181 else None
        ch = supervisor.channels.get((nvr, code)) if supervisor is not None else None
        return None if ch is None else ch.play

    def own_connection_closed(self, nvr: str) -> bool:
        dev = self.devices.devices.get(nvr)
        return dev is not None and self.transport._open(dev.addr) is None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("gbdial")
    top = {"http": {"listen": "127.0.0.1:0"}, "live": {"linger_s": 1.0}}
    controller, password, sip_port = device_controller(
        tmp / "ctl", SERVER_ID, NVR, [Channel(CH1, "东门")], top,
        invite_answer_s=ANSWER_S, reinvite_min_s=0.5, reinvite_max_s=2.0,
    )  # fmt: skip
    try:
        store = GbDeviceStore(controller.engine, SystemClock())
        passwords = {NVR: password}
        for nvr, code in ((GONE, CH_GONE), (HOLE, CH_HOLE), (NVR2, CH3)):
            passwords[nvr] = store.issue(nvr, "wudu", "东关村", REALM)
            store.set_channels(nvr, [Channel(code, "桥头")])
        create_user(controller.engine, SystemClock(), "wd-op", "wudu", "operator", PASSWORD,
                    policy=default_policy())  # fmt: skip
        gb = controller.gb28181
        assert gb is not None and gb.devices is not None
        http = next(c for c in controller.components if isinstance(c, HttpComponent))
        yield World(controller, gb.devices, gb.devices.transport, sip_port, passwords, tmp,
                    http.base_url, make_ps(tmp / "channel.ps"))  # fmt: skip
    finally:
        controller.stop(grace_s=1.0)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def blackhole() -> tuple[int, list[socket.socket]]:
    """A port that never answers a connect: listening with its accept queue full (one
    connection held, never accepted), so the kernel drops further SYNs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname(), 2)
    return server.getsockname()[1], [server, filler]


def wait_for(what: str, ok: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def open_live(world: World, token: str, camera: str, granted: str = "") -> ClientConnection:
    """A console live view (the WebSocket route), its hello sent (a grant made when none)."""
    ws = connect(f"{world.base.replace('http://', 'ws://')}/api/v1/live/{camera}/ws",
                 max_size=None, max_queue=None, legacy=True)  # fmt: skip
    granted = granted or grant(world.base, token, [camera])["token"]
    ws.send(json.dumps({"session": token, "grant": granted}))
    return ws


def offline_at(views: list[ClientConnection], deadline: float) -> list[tuple[float, str]]:
    """When each view said camera_offline (monotonic time, read in turns of 20 ms so none
    waits for another), and its detail."""
    said: dict[int, tuple[float, str]] = {}
    while len(said) < len(views) and time.monotonic() < deadline:
        for n, ws in enumerate(views):
            for msg in read_media(ws, 0.02)[1] if n not in said else ():
                if msg.get("state") == "camera_offline":
                    said[n] = (time.monotonic(), str(msg.get("detail", "")))
    assert len(said) == len(views), f"camera_offline in time from only {sorted(said)}"
    return [said[n] for n in range(len(views))]


def frames_from(ws: ClientConnection, frames: int) -> int:
    """Read a live view until `frames` decode (at most 8 s); how many did."""
    data = b""
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline:
        data += read_media(ws, 0.2)[0]
        if data and len(decode(data)) >= frames:
            break
    return len(decode(data)) if data else 0


def test_a_viewer_makes_vigil_connect_to_a_device_whose_connection_closed(world: World) -> None:
    port = free_tcp_port()  # the NVR's SIP port (its Contact)
    trap = socket.socket()  # the port forged REGISTERs name: never to be connected to
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    trap.setblocking(False)
    listen_log = world.tmp / "listening.log"
    device = subprocess.Popen(
        [sipp_binary(), "-t", "t1", "-sf", str(SIPP_DIR / "device_tcp_listen.xml"),
         "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin", "-key", "device", NVR,
         "-timeout", "60s", "-timeout_error", "-trace_msg", "-message_file", str(listen_log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=world.tmp,
    )  # fmt: skip
    ws: ClientConnection | None = None
    try:
        registered = world.register_once(NVR, world.passwords[NVR], port, "register.log")
        dev = world.devices.devices[NVR]
        assert dev.tcp and dev.dial == ("127.0.0.1", port), dev
        assert dev.addr[1] != port  # it registered from another port than it listens on
        wait_for("its own connection closed", lambda: world.own_connection_closed(NVR), 5)
        # forged REGISTERs naming the trap's port: refused; where Vigil would dial is unchanged
        trap_port = trap.getsockname()[1]
        forged = world.register_once(NVR, "not-its-password", trap_port, "forged.log")
        assert "SIP/2.0 403" in forged, forged[-1500:]
        unknown = world.register_once(UNKNOWN, "whatever", trap_port, "unknown.log")
        assert "SIP/2.0 403" in unknown, unknown[-1500:]
        assert dev.dial == ("127.0.0.1", port) and UNKNOWN not in world.devices.devices
        assert world.transport.dialed == 0

        token = session(world.base)
        ws = open_live(world, token, CH1)
        wait_for("the INVITE answered", lambda: world.play(NVR, CH1) is not None, 10)
        assert world.transport.dialed == 1  # Vigil opened one connection, to the Contact
        play = world.play(NVR, CH1)
        assert play is not None
        send_ps(world.source, play.port, play.ssrc)
        assert frames_from(ws, 49) == 49  # from the first keyframe (the 50th waits)
        ws.close()
        wait_for("the BYE after the linger", lambda: world.play(NVR, CH1) is None, 10)
        assert device.wait(10) == 0  # it got INVITE, ACK and BYE and answered them
        # the device closing its end (SIPp exits) closes Vigil's
        wait_for("the connection closed", lambda: world.transport.dialed == 0, 5)
    finally:
        if ws is not None:
            ws.close()
        if device.poll() is None:
            device.kill()
            device.wait(10)
    with pytest.raises(BlockingIOError):
        trap.accept()  # nobody ever connected to the forged Contacts' port
    trap.close()
    heard = listen_log.read_text(errors="replace")
    for request in (f"INVITE sip:{CH1}@", f"ACK sip:{CH1}@", f"BYE sip:{CH1}@"):
        sent = heard[heard.index(request) :][:300]  # on the connection Vigil opened
        assert "Via: SIP/2.0/TCP" in sent, (request, sent)
    assert "INVITE sip:" not in registered  # not on the connection it registered over


def test_a_device_that_does_not_take_the_connection_fails_its_viewer_fast_alone(
    world: World,
) -> None:
    refused = free_tcp_port()  # nothing listens: connection refused at once
    hole, held = blackhole()  # never answered: the connect gives up after invite_answer_s
    other = udp_device(world.sip_port, world.tmp, "device_ooc_media.xml", world.tmp / "o.log",
                       NVR2, world.passwords[NVR2], SERVER_ID)  # fmt: skip
    views: list[ClientConnection] = []
    try:
        world.register_once(GONE, world.passwords[GONE], refused, "gone.log")
        world.register_once(HOLE, world.passwords[HOLE], hole, "hole.log")
        wait_for("NVR2 registered", lambda: NVR2 in world.devices.devices, 10)
        wait_for("their connections closed", lambda: all(world.own_connection_closed(n)
                                                          for n in (GONE, HOLE)), 5)  # fmt: skip
        token = session(world.base)
        codes = (CH_HOLE, CH_GONE, CH3)  # the one that never answers first
        grants = [grant(world.base, token, [code])["token"] for code in codes]
        opened = time.monotonic()
        views = [open_live(world, token, code, g) for code, g in zip(codes, grants, strict=True)]
        wait_for("NVR2's session", lambda: world.play(NVR2, CH3) is not None, 5)
        other_up = time.monotonic() - opened
        (hole_at, hole_why), (gone_at, gone_why) = offline_at(views[:2], opened + 8)
        print(f"refused: viewer told in {gone_at - opened:.2f} s ({gone_why}); never "
              f"answered: {hole_at - opened:.2f} s ({hole_why}); other NVR up in "
              f"{other_up:.2f} s")  # fmt: skip
        assert f"127.0.0.1:{refused}: connection refused" in gone_why, gone_why
        assert f"127.0.0.1:{hole}: no answer in {ANSWER_S:g} s" in hole_why, hole_why
        assert gone_at - opened < STATUS_S + 1.5
        assert hole_at - opened < ANSWER_S + STATUS_S + 1.5
        assert other_up < ANSWER_S  # not held up by the connect that never completes
        # both count as not answering (their other INVITEs fail at once until heard from)
        assert not world.devices.answering(GONE) and not world.devices.answering(HOLE)
        assert world.transport.dialed <= 1  # none to them (NVR's from the test before)
    finally:
        for ws in views:
            ws.close()
        other.kill()
        other.wait(10)
        for s in held:
            s.close()


# -- the transport's rules on real sockets ----------------------------------------------------


async def _nothing(_: Inbound) -> None:
    return None


def test_connections_to_devices_are_shared_capped_and_closed_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dial, "IDLE_S", 0.6)
    monkeypatch.setattr(dial, "MAX_OPEN", 1)

    async def run() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def device_port(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            accepted.append(w)

        listening = await asyncio.start_server(device_port, "127.0.0.1", 0)
        where = ("127.0.0.1", int(listening.sockets[0].getsockname()[1]))
        transport = SipTransport(_nothing)
        local = await transport.listen("127.0.0.1", 0, tcp=True)
        try:
            # the device's own connection is up: it is used, nothing is dialed
            _r, own = await asyncio.open_connection(*local)
            own_addr = own.get_extra_info("sockname")[:2]
            for _ in range(200):  # until Vigil accepted it
                if transport._open(own_addr) is not None:
                    break
                await asyncio.sleep(0.01)
            used = await transport.reach(own_addr, where)
            assert transport._open(own_addr) is used and accepted == [] and transport.dialed == 0
            own.close()
            # closed: three requests at once make one connection
            gone = ("127.0.0.1", free_tcp_port())
            writers = await asyncio.gather(*(transport.reach(gone, where) for _ in range(3)))
            await asyncio.sleep(0.05)
            assert len({id(w) for w in writers}) == 1 and len(accepted) == 1
            assert transport.dialed == 1
            # the cap (1 here): another device is not dialed now, and not blamed for it
            with pytest.raises(DialError) as capped:
                await transport.reach(gone, ("127.0.0.1", free_tcp_port()))
            assert not capped.value.blame and "open already" in str(capped.value)
            # traffic keeps it; idle for IDLE_S closes it (the device sees it closed)
            await asyncio.sleep(0.4)
            accepted[0].write(b"\r\n\r\n")  # the device's CRLF keepalive (RFC 5626)
            await asyncio.sleep(0.4)
            assert transport.dialed == 1
            await asyncio.sleep(0.5)
            assert transport.dialed == 0 and writers[0].is_closing()
            # refused: at once, the device blamed
            start = time.monotonic()
            with pytest.raises(DialError) as refused:
                await transport.reach(gone, ("127.0.0.1", free_tcp_port()))
            assert refused.value.blame and "connection refused" in str(refused.value)
            assert time.monotonic() - start < 0.5
            # never answered: given up after the connect time
            hole, held = blackhole()
            try:
                start = time.monotonic()
                with pytest.raises(DialError) as silent:
                    await transport.reach(gone, ("127.0.0.1", hole), 0.5)
                assert "no answer in 0.5 s" in str(silent.value)
                assert 0.45 < time.monotonic() - start < 1.0
            finally:
                for s in held:
                    s.close()
        finally:
            await transport.aclose()
            listening.close()
            for w in accepted:
                w.close()

    asyncio.run(run())
