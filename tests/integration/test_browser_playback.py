"""Granted footage plays in a real browser, in ffprobe/ffmpeg and in PyAV.

Everything is real: an emulated camera (camsim: GStreamer RTSP, H.264 with SMPTE bars and a
label), the agent's PyAV capture into its durable buffer, the uplink over mutual-TLS gRPC into
a controller (SQLite catalog, local object store) that runs the HTTP component exactly as
`vigil-controller serve` wires it. Then a user logs in on the web console in headless Debian
Chromium, the console mints a playback grant and plays the playlist with hls.js: the video's
time must advance past 2 s and a frame drawn to a canvas must show the camera's picture.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from playwright.sync_api import expect

from controller.api.component import HttpComponent
from controller.api.deps import WEB_DIR
from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.users import create_user
from edge_agent.app import Agent
from edge_agent.capture import CaptureSettings
from edge_agent.clock import SystemClock
from edge_agent.config import AgentConfig, BufferConfig, CameraConfig
from edge_agent.uplink import Uploader, open_client
from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.fixtures.camsim import TEST_DEFAULTS
from tests.integration.test_api_support import OFFICER, ApiWorld
from tests.integration.test_api_support import PASSWORD as API_PASSWORD
from tests.integration.test_uplink_support import FAST_RETRY, make_site, uplink_config
from tests.support import require_binary, wait_until
from vigil_camsim.launcher import CamsimProcess, check_gstreamer

PASSWORD = "correct horse battery"
SEGMENTS = 4  # 2 s each: enough to watch the time pass 2 s
BINS = 4  # colour quantisation per channel for the picture comparison


@dataclass
class Recorded:
    controller: Controller
    http: HttpComponent
    first_segment: Path  # a copy of the first stored segment (to decode the reference frame)

    @property
    def base(self) -> str:
        return self.http.base_url


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """One camera recorded for ~8 s through the real agent and uplink into a controller that
    serves HTTP; user `wd-op` (武都区 operator: the camera's county) may play it."""
    problem = check_gstreamer()
    if problem is not None:
        pytest.fail(f"camsim cannot run: {problem}", pytrace=False)
    tmp = tmp_path_factory.mktemp("browser")
    site = make_site(tmp, cameras=("cam1",))
    ensure_keys(site.data_dir)
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(site.data_dir),
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    clock = ControllerClock()
    controller = build_controller(config, clock, Parts(http=True))
    controller.start()
    cams = CamsimProcess.start(1, **{**TEST_DEFAULTS, "log_path": tmp / "camsim.log"})
    try:
        http = next(c for c in controller.components if isinstance(c, HttpComponent))
        create_user(
            controller.engine, clock, "wd-op", "wudu", "operator", PASSWORD, policy=default_policy()
        )
        agent_cfg = AgentConfig(
            device_id="dev1",
            data_dir=str(tmp / "agent"),
            cameras=[CameraConfig(id="cam1", url=cams.url(1), segment_seconds=2.0)],
            buffer=BufferConfig(quota_bytes=256 * 1024 * 1024),
            uplink=uplink_config(controller.grpc_port, site.device),
        )
        agent_clock = SystemClock()
        settings = CaptureSettings(
            state_dir=tmp / "agent" / "capture", backoff_initial_s=0.2, backoff_cap_s=1.0
        )
        agent = Agent.open(agent_cfg, agent_clock, settings)
        client = open_client(agent_cfg.uplink, agent_clock)
        agent.add_component(
            Uploader(
                agent.buffer,
                client,
                agent_clock,
                lambda _e: None,
                policy=FAST_RETRY,
                idle_poll_s=0.2,
            )
        )
        agent.start()
        try:
            wait_until(
                lambda: controller.catalog.count_segments("cam1") >= SEGMENTS,
                60,
                f"{SEGMENTS} segments of cam1 in the controller",
            )
        finally:
            agent.stop()
            client.close()
            cams.stop()  # recorded: the camera is not needed any more
        first = controller.catalog.segments_in_range("cam1", 0, clock.now_us())[0]
        copy = tmp / "first.ts"
        copy.write_bytes(controller.store.read_bytes(first.object_key))
        yield Recorded(controller, http, copy)
    finally:
        cams.stop()
        controller.stop(grace_s=1.0)


def histogram(pixels: list[int], channels: int) -> list[float]:
    """A coarse colour histogram (BINS^3 bins, normalised) of RGB(A) pixel bytes."""
    counts = [0] * BINS**3
    step = 256 // BINS
    n = 0
    for i in range(0, len(pixels) - 2, channels):
        r, g, b = pixels[i] // step, pixels[i + 1] // step, pixels[i + 2] // step
        counts[(r * BINS + g) * BINS + b] += 1
        n += 1
    return [c / n for c in counts]


def reference_histogram(segment: Path) -> list[float]:
    with av.open(str(segment)) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
    plane = frame.planes[0]
    data = bytes(plane)
    row = frame.width * 3
    pixels = b"".join(
        data[y * plane.line_size : y * plane.line_size + row] for y in range(frame.height)
    )
    return histogram(list(pixels), 3)


def session(base: str) -> str:
    r = httpx.post(f"{base}/api/v1/login", json={"user_id": "wd-op", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def test_console_plays_granted_footage_in_chromium(
    recorded: Recorded, chromium: Any, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    console_log: list[str] = []
    page.on("console", lambda msg: console_log.append(f"{msg.type}: {msg.text}"))
    page.goto(recorded.base + "/")
    assert page.inner_text("#hls-status") == ""  # hls.js is installed
    page.fill("#login-user", "wd-op")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.click("nav [data-view=playback]")  # the single-camera view of the console
    page.wait_for_selector("#camera-select option[value='cam1']", state="attached")
    page.select_option("#camera-select", "cam1")
    page.click("#play")
    try:
        page.wait_for_function(
            "() => document.getElementById('video').currentTime > 2.0", timeout=45_000
        )
    finally:
        page.screenshot(path=str(tmp_path / "console.png"))
    stats = page.evaluate(
        """() => {
            const v = document.getElementById('video');
            const c = document.createElement('canvas');
            c.width = v.videoWidth; c.height = v.videoHeight;
            const g = c.getContext('2d');
            g.drawImage(v, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            return {width: c.width, height: c.height, pixels: Array.from(d)};
        }"""
    )
    assert (stats["width"], stats["height"]) == (320, 180), console_log
    seen = histogram(stats["pixels"], 4)
    assert sum(1 for share in seen if share > 0.01) >= 5, "the frame is blank or flat"
    reference = reference_histogram(recorded.first_segment)
    overlap = sum(min(a, b) for a, b in zip(seen, reference, strict=True))
    assert overlap > 0.6, f"the browser's picture is not the camera's (overlap {overlap:.2f})"
    assert "正在回放 cam1" in page.inner_text("#status")  # zh-CN first
    audit = recorded.controller.catalog  # the same database holds the audit log
    from controller.audit.log import search

    entries = search(audit.engine, user="wd-op", camera="cam1")
    assert [e.outcome for e in entries if e.action == "playlist"][:1] == ["ok"]
    page.close()


def test_ffprobe_ffmpeg_and_pyav_read_the_granted_playlist(recorded: Recorded) -> None:
    ffprobe = require_binary("ffprobe", "apt-get install -y ffmpeg")
    ffmpeg = require_binary("ffmpeg", "apt-get install -y ffmpeg")
    base = recorded.base
    token = session(base)
    now = recorded.controller.clock.now_us()
    grant = httpx.post(
        f"{base}/api/v1/grants",
        json={
            "operations": ["playback"],
            "cameras": ["cam1"],
            "from_us": now - 10 * 60 * 1_000_000,
            "to_us": now,
            "purpose": "ffprobe check",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert grant.status_code == 201, grant.text
    url = httpx.URL(
        f"{base}/play/cam1.m3u8",
        params={
            "from": str(now - 10 * 60 * 1_000_000),
            "to": str(now),
            "grant": grant.json()["token"],
            "session": token,
        },
    )
    probe = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height:format=duration",
            "-of",
            "json",
            str(url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    info = json.loads(probe.stdout)
    video = [s for s in info["streams"] if s.get("codec_name") == "h264"]
    assert video and (video[0]["width"], video[0]["height"]) == (320, 180)
    assert float(info["format"]["duration"]) >= SEGMENTS * 2 - 1
    decode = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(url), "-map", "0:v", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert decode.returncode == 0 and "error" not in decode.stderr.lower(), decode.stderr
    with av.open(str(url), timeout=30) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames >= (SEGMENTS * 2 - 1) * 25


def test_console_without_hlsjs_still_works_and_says_so(chromium: Any, tmp_path: Path) -> None:
    web = tmp_path / "web"
    shutil.copytree(WEB_DIR, web, ignore=shutil.ignore_patterns("hls.min.js"))
    api = ApiWorld(tmp_path / "world", web_dir=web)
    try:
        page = chromium.new_page()
        page.goto(api.http.base_url + "/")
        assert "hls.js 未安装" in page.inner_text("#hls-status")  # zh-CN first
        page.fill("#login-user", OFFICER.user_id)
        page.fill("#login-password", API_PASSWORD)
        page.click("#login-submit")
        page.click("nav [data-view=playback]")  # the single-camera view of the console
        page.wait_for_selector("#camera-select option[value='cam-01']", state="attached")
        # The camera list is drawn after the select is filled: wait for its row.
        expect(page.locator("#cameras")).to_contain_text("cam-02")
        page.click("#play")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('hls.js')"
        )
        assert "回放不可用" in page.inner_text("#status")
        assert api.world.audit.search(action="grant_minted") == []  # nothing asked for
        page.close()
    finally:
        api.close()
