"""GB/T 28181 devices in the console, in headless Chromium, with SIPp playing the NVRs.

The fleet view lists an NVR registered over GB/T 28181 beside the agents, with its state
from its registration (online, last keepalive, channels; its detail: where it registered
from and to which replica); a GB channel is watched live through the hub (the console's own
WebSocket route: INVITE, PS/RTP in, remuxed to MPEG-TS), its picture moves and its G.711
audio, carried as AAC, is decoded by the page, with sound: the view was started by the
user's click (and "开启声音" turns the sound back on once muted). Without the
browser: an NVR that vanished without unregistering fails its viewer within seconds, with
the reason, and holds up no other channel; its other channels fail at once; the fleet view
says it does not answer; once it is heard from again it plays again. An NVR that registered to
another controller replica since (its row says so) is forgotten here, not INVITEd: one
replica records a channel, never two.
Every request the page makes goes to the controller's origin; no console error is allowed
beyond the 503s of the views this controller does not run (fleet MQTT alerts, scheduler).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from controller.api.component import HttpComponent
from controller.api.routes.live import STATUS_S  # the view's state is sent this often
from controller.assembly import Controller
from controller.clock import SystemClock
from controller.gb28181.channel_sessions import RecordingSupervisor
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import OFF, ON, Channel
from controller.grants.policy import default_policy
from controller.users import create_user
from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.integration.gb_device_support import (
    REALM,
    PacedPs,
    device_controller,
    make_ps_with_audio,
    sipp_device,
)
from tests.integration.test_browser_console import Watched
from tests.integration.test_browser_live import FIRST_FRAME
from tests.integration.test_live_view import PASSWORD, grant, read_media, session

SERVER_ID = "62120000002000000005"
NVR = "62120200001110000051"
CH1, CH2 = "62120200001310000511", "62120200001310000512"
NVR2 = "62120200001110000052"  # a second NVR that stays up
CH3 = "62120200001310000521"
ANSWER_S = 1.0  # [gb28181] invite_answer_s


@dataclass
class GbWorld:
    controller: Controller
    supervisor: RecordingSupervisor
    sip_port: int
    passwords: dict[str, str]
    tmp: Path
    base: str

    def nvr(self, nvr: str, log: str) -> subprocess.Popen[bytes]:
        """SIPp registering as `nvr` and answering INVITEs (media from the test)."""
        return sipp_device(self.sip_port, self.tmp, "device_ooc_media.xml", self.tmp / log,
                           nvr, self.passwords[nvr], SERVER_ID)  # fmt: skip

    def epoch(self, nvr: str) -> int:
        dev = self.supervisor.access.devices.get(nvr)
        return dev.epoch if dev is not None else 0

    def registered(self, nvr: str, proc: subprocess.Popen[bytes], before: int) -> None:
        wait_for(f"{nvr} registered", lambda: self.epoch(nvr) > before or proc.poll() is not None)
        assert proc.poll() is None, "SIPp ended before registering"

    def session(self, nvr: str, code: str) -> Any:
        ch = self.supervisor.channels.get((nvr, code))
        return None if ch is None else ch.play


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbWorld]:
    tmp = tmp_path_factory.mktemp("gbweb")
    top = {"http": {"listen": "127.0.0.1:0"}, "live": {"linger_s": 1.0}}
    controller, password, sip_port = device_controller(
        # the NVR's last Catalog said CH2 is OFF (tests/integration/test_gb28181_devices.py
        # has SIPp send that); CH1 ON
        tmp / "ctl", SERVER_ID, NVR,
        [Channel(CH1, "东门", status=ON), Channel(CH2, "院子", status=OFF)], top,
        invite_answer_s=ANSWER_S, reinvite_min_s=0.5, reinvite_max_s=2.0,
    )  # fmt: skip
    try:
        store = GbDeviceStore(controller.engine, SystemClock())
        password2 = store.issue(NVR2, "wudu", "东关村", REALM)
        store.set_channels(NVR2, [Channel(CH3, "桥头")])
        create_user(controller.engine, SystemClock(), "wd-op", "wudu", "operator", PASSWORD,
                    policy=default_policy())  # fmt: skip
        assert controller.gb28181 is not None and controller.gb28181.recording is not None
        http = next(c for c in controller.components if isinstance(c, HttpComponent))
        yield GbWorld(controller, controller.gb28181.recording, sip_port,
                      {NVR: password, NVR2: password2}, tmp, http.base_url)  # fmt: skip
    finally:
        controller.stop(grace_s=1.0)


def wait_for(what: str, ok: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(10)


def test_console_lists_a_gb_device_and_plays_its_channel_live(
    world: GbWorld, chromium: Any, tmp_path: Path
) -> None:
    source = make_ps_with_audio(tmp_path / "live.ps", 10.0)  # H.264 + G.711 A-law
    proc = world.nvr(NVR, "browser.log")
    sender: PacedPs | None = None
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    watched = Watched(page, world.base)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        world.registered(NVR, proc, 0)
        page.goto(world.base + "/")
        page.fill("#login-user", "wd-op")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        # the fleet view: the registered NVR online with its channels, the other never seen
        row = f"#devices tr[data-device='{NVR}']"
        page.wait_for_function(
            f"() => (document.querySelector(\"{row}\") || {{}}).textContent?.includes('在线')",
            timeout=15_000,
        )
        text = page.inner_text(row)
        assert "国标" in text and "2 个通道 · 1 个离线" in text, text
        assert "未知" in page.inner_text(f"#devices tr[data-device='{NVR2}']")
        page.click(row)
        page.wait_for_selector("#device-detail table")
        detail = page.inner_text("#device-detail")
        assert "127.0.0.1:" in detail and CH1 in detail and CH2 in detail, detail
        assert world.controller.core.config.replica_id() in detail, detail
        # each channel's own state: CH2 offline as its NVR's Catalog reports, CH1 online
        ch = "#device-detail tr:has(th:text-is('{}')) td"
        assert page.inner_text(ch.format(CH1)).startswith("在线"), detail
        off = page.inner_text(ch.format(CH2))
        assert off.startswith("通道离线（设备目录报告 OFF）") and "目录状态 OFF" in off, off
        page.screenshot(path=str(tmp_path / "gb-fleet.png"), full_page=True)
        page.click("#lang")  # the English switch says the same
        page.click(row)
        page.wait_for_function(
            "() => document.getElementById('device-detail').textContent"
            '.includes("channel offline (the device\'s catalog reports OFF)")',
            timeout=5_000,
        )
        page.click("#lang")

        # its channel live: the first viewer INVITEs, the NVR's PS/RTP plays in the page
        page.click("nav [data-view=playback]")
        page.wait_for_selector(f"#camera-select option[value='{CH1}']", state="attached")
        page.select_option("#camera-select", CH1)
        page.evaluate(FIRST_FRAME)
        page.click("#live")
        wait_for("the INVITE answered", lambda: world.session(NVR, CH1) is not None, 10)
        play = world.session(NVR, CH1)
        sender = PacedPs(source, play.port, play.ssrc, duration_s=10.0)
        sender.start()
        page.wait_for_function("() => window.__frames > 25", timeout=15_000)
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('直播 live')",
            timeout=5_000,
        )
        live = world.controller.live
        assert live is not None
        first = (page.evaluate("() => document.getElementById('video').currentTime"),
                 live.status(CH1).frame_us)  # fmt: skip
        time.sleep(1.5)
        then = (page.evaluate("() => document.getElementById('video').currentTime"),
                live.status(CH1).frame_us)  # fmt: skip
        page.screenshot(path=str(tmp_path / "gb-live.png"), full_page=True)
        assert then[0] - first[0] > 0.8, (first, then)  # the picture moves
        assert then[1] - first[1] > 800_000, (first, then)  # so does the hub's newest frame
        assert live.status(CH1).codec == "h264"
        audio = "() => document.getElementById('video').webkitAudioDecodedByteCount"
        page.wait_for_function(f"{audio} > 0", timeout=5_000)  # AAC from the device's G.711
        # started by the click on 实时: with sound (it used to start muted, whatever the click)
        assert page.evaluate("() => document.getElementById('video').muted") is False
        assert page.is_hidden("#unmute")
        page.evaluate("() => { document.getElementById('video').muted = true; }")  # user mutes
        page.wait_for_selector("#unmute", state="visible", timeout=2_000)
        assert page.inner_text("#unmute") == "开启声音"
        page.click("#unmute")
        assert page.evaluate("() => document.getElementById('video').muted") is False
        assert page.is_hidden("#unmute")
        page.wait_for_function("() => !document.getElementById('video').paused", timeout=2_000)
    finally:
        page.screenshot(path=str(tmp_path / "gb-end.png"), full_page=True)
        page.close()
        if sender is not None:
            sender.stop()
        stop(proc)
    wait_for("the viewer gone and the session BYE'd", lambda: world.session(NVR, CH1) is None, 10)
    # No MQTT fleet and no scheduler run here: /alerts and /scheduler/plan answer 503 (the
    # console says so; Chromium logs each as a console error); nothing else may fail.
    expected = {f"503 {world.base}/api/v1/alerts", f"503 {world.base}/api/v1/scheduler/plan"}
    assert set(watched.failed) <= expected, watched.failed
    watched.errors = [e for e in watched.errors if "status of 503" not in e]
    watched.check()
    assert sockets == [f"{world.base.replace('http://', 'ws://')}/api/v1/live/{CH1}/ws"], sockets


def pushed_cameras(base: str, headers: dict[str, str]) -> dict[str, bool]:
    """The camera states of the first `fleet` event the console's event stream pushes."""
    with httpx.stream("GET", f"{base}/api/v1/events", headers=headers, timeout=10) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                cameras: dict[str, bool] = json.loads(line[6:])["cameras"]
                return cameras
    raise AssertionError("no fleet event")


def open_live(world: GbWorld, token: str, camera: str) -> ClientConnection:
    ws = connect(f"{world.base.replace('http://', 'ws://')}/api/v1/live/{camera}/ws",
                 max_size=None, max_queue=None, legacy=True)  # fmt: skip
    ws.send(json.dumps({"session": token, "grant": grant(world.base, token, [camera])["token"]}))
    return ws


def offline_within(ws: ClientConnection, seconds: float) -> tuple[float, str]:
    """How long until the view says camera_offline, and its detail."""
    start = time.monotonic()
    while (left := start + seconds - time.monotonic()) > 0:
        for msg in read_media(ws, min(left, 0.1))[1]:
            if msg.get("state") == "camera_offline":
                return time.monotonic() - start, str(msg.get("detail", ""))
    raise AssertionError(f"no camera_offline within {seconds} s")


def test_a_vanished_device_fails_its_viewers_fast_and_blocks_no_other_channel(
    world: GbWorld,
) -> None:
    gone = world.nvr(NVR, "vanish.log")
    other = world.nvr(NVR2, "other.log")
    views: list[ClientConnection] = []
    back: subprocess.Popen[bytes] | None = None
    try:
        world.registered(NVR, gone, world.epoch(NVR))
        world.registered(NVR2, other, 0)
        token = session(world.base)
        headers = {"Authorization": f"Bearer {token}"}

        def channels(state: str) -> list[str]:
            url = f"{world.base}/api/v1/cameras?device={NVR}&state={state}"
            return sorted(c["camera_id"] for c in httpx.get(url, headers=headers).json())

        # its channels count as online in the tree and lists while it is (its device's
        # state), except CH2, which its Catalog reports OFF
        wait_for("its channels online", lambda: channels("online") == [CH1], 5)
        assert channels("offline") == [CH2]
        tree = httpx.get(f"{world.base}/api/v1/directory/tree", headers=headers).json()
        counts = {n["key"]: (n["total"], n["online"], n["offline"]) for n in tree}
        assert counts == {"武都区": (3, 2, 1)}, counts  # CH1 and CH3 online, CH2 off
        dots = pushed_cameras(world.base, headers)  # the console's pushed camera dots
        assert (dots[CH1], dots[CH2], dots[CH3]) == (True, False, True), dots
        stop(gone)  # power cut: no un-REGISTER, the registration still runs
        views = [open_live(world, token, CH1), open_live(world, token, CH3)]
        opened = time.monotonic()
        # the other NVR's channel is INVITEd and answered meanwhile, not after the lost one
        wait_for("the other NVR's session", lambda: world.session(NVR2, CH3) is not None, 5)
        other_up = time.monotonic() - opened
        took, why = offline_within(views[0], ANSWER_S + 4)
        print(f"vanished NVR: viewer told in {took:.2f} s ({why}); other NVR up in "
              f"{other_up:.2f} s")  # fmt: skip
        assert "does not answer" in why, why
        assert took < ANSWER_S + STATUS_S + 1.0, took  # was 8 s (the SIP timeout)
        assert other_up < ANSWER_S, other_up
        # its other channel fails at once: no INVITE waits for a device known not to answer
        views.append(open_live(world, token, CH2))
        took2, why2 = offline_within(views[2], 3)
        assert took2 < STATUS_S + 0.5 and "waiting to hear from it" in why2, (took2, why2)
        # the fleet view says so (its rows are read at most every 2 s)

        def state() -> dict[str, Any]:
            devices = httpx.get(f"{world.base}/api/v1/devices", headers=headers).json()
            out: dict[str, Any] = next(d for d in devices if d["device_id"] == NVR)
            return out

        wait_for("the fleet view's not answering", lambda: state()["online"] is False, 5)
        assert state()["offline_reason"] == "not answering INVITE"
        assert state()["gb"]["not_answering_since_us"] > 0
        assert channels("offline") == [CH1, CH2]
        # heard from again (it registers): its waiting viewer's channel is INVITEd again
        back = world.nvr(NVR, "back.log")
        wait_for("the session once it is back", lambda: world.session(NVR, CH1) is not None, 10)
        wait_for("the fleet view's online again", lambda: state()["online"] is True, 5)
    finally:
        for ws in views:
            ws.close()
        for proc in (gone, other, back):
            if proc is not None and proc.poll() is None:
                stop(proc)


def test_a_device_that_registered_to_another_replica_is_not_invited_here(world: GbWorld) -> None:
    log = world.tmp / "moved.log"
    proc = world.nvr(NVR2, "moved.log")
    ws: ClientConnection | None = None
    try:
        world.registered(NVR2, proc, world.epoch(NVR2))
        # what replica B writes when the NVR registers there (the same database)
        GbDeviceStore(world.controller.engine, SystemClock(), "replica-b").registered(
            NVR2, "10.9.9.9:5060", 3600
        )
        token = session(world.base)
        ws = open_live(world, token, CH3)
        wait_for("the NVR forgotten here", lambda: NVR2 not in world.supervisor.access.devices, 5)
        ch = world.supervisor.channels.get((NVR2, CH3))
        assert ch is None or ch.play is None
        time.sleep(0.5)
        assert f"INVITE sip:{CH3}" not in log.read_text(errors="replace")
        headers = {"Authorization": f"Bearer {token}"}

        def gb() -> dict[str, Any]:
            devices = httpx.get(f"{world.base}/api/v1/devices", headers=headers).json()
            out: dict[str, Any] = next(d for d in devices if d["device_id"] == NVR2)["gb"]
            return out

        wait_for("the fleet view's replica", lambda: gb()["replica"] == "replica-b", 5)
        assert gb()["contact"] == "10.9.9.9:5060"
    finally:
        if ws is not None:
            ws.close()
        stop(proc)
