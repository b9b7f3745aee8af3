"""The console's live view in headless Chromium: camsim -> agent tee -> Feed -> hub ->
WebSocket -> mpegts.js -> <video>, every part real (the `world` of test_live_view.py).

The page must show a moving picture within seconds of the click, say honestly what state the
feed is in (live with the newest frame's age; agent unreachable when the agent's feed stream
goes away; live again when it comes back, without reloading the page), log no console error,
and make every request to the controller's own origin (mpegts.js is vendored).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.live_probe import PROBE_JS, RESET_JS, STATS_JS, summary
from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.integration.test_live_view import PASSWORD, World, idle, session
from tests.integration.test_live_view import world as world
from tests.support import wait_until

FIRST_FRAME = """() => {
    window.__click = performance.now();
    window.__first = null;
    window.__frames = 0;
    const v = document.getElementById('video');
    const cb = () => {
        if (window.__first === null) window.__first = performance.now();
        window.__frames += 1;
        window.__lastWall = Date.now();
        v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
}"""

PICTURE = """() => {
    const v = document.getElementById('video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4 * 97) {
        colours.add((d[i] >> 5) * 64 + (d[i + 1] >> 5) * 8 + (d[i + 2] >> 5));
    }
    const b = v.buffered;
    return {width: c.width, height: c.height, colours: colours.size,
            behind: b.length ? b.end(b.length - 1) - v.currentTime : -1};
}"""


def test_console_watches_a_camera_live(world: World, chromium: Any, tmp_path: Path) -> None:
    idle(world)
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(world.base + "/")
    try:
        assert page.inner_text("#hls-status") == ""  # hls.js and mpegts.js are installed
        page.fill("#login-user", "wd-op")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.click("nav [data-view=playback]")  # the single-camera view of the console
        page.wait_for_selector("#camera-select option[value='cam1']", state="attached")
        page.select_option("#camera-select", "cam1")
        page.evaluate(FIRST_FRAME)
        page.click("#live")
        page.wait_for_function("() => window.__frames > 50", timeout=20_000)
        startup_ms = page.evaluate("() => window.__first - window.__click")
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('直播 live')",
            timeout=5_000,
        )
        time.sleep(3)
        picture = page.evaluate(PICTURE)
        status = page.inner_text("#live-status")
        page.screenshot(path=str(tmp_path / "live-console.png"), full_page=True)
        print(
            f"live: first frame {startup_ms:.0f} ms after the click (grant included), "
            f"player {picture['behind']:.2f} s behind its newest buffered frame; {status}"
        )
        assert (picture["width"], picture["height"]) == (320, 180)
        assert picture["colours"] >= 5, "the picture is blank or flat"
        assert startup_ms < 3000, f"first frame {startup_ms:.0f} ms after the click"
        assert 0 <= picture["behind"] < 1.5, picture
        assert world.hub.viewers("cam1") == 1

        # Latency, camera to screen: stall the camera and see how long the page still presents
        # frames that were already on their way (RTSP, agent, gRPC, hub, WebSocket, player).
        stalled_ms = time.time() * 1000
        world.cams.client.stall(1)
        time.sleep(2.5)
        last_ms = page.evaluate("() => window.__lastWall")
        world.cams.client.unstall(1)
        latency_ms = last_ms - stalled_ms
        print(f"live: camera-to-screen latency {latency_ms:.0f} ms (last frame after the stall)")
        assert latency_ms < 1500, f"frames kept coming {latency_ms:.0f} ms after the stall"
        page.wait_for_function(
            f"() => window.__lastWall > {last_ms} + 500", timeout=15_000
        )  # frames again after the camera resumed

        # A player stuck on one picture (not paused) while the server says live is restarted.
        # (Media Source appends are swallowed: the picture stops, the socket goes on.)
        page.evaluate(
            """() => {
                window.__append = SourceBuffer.prototype.appendBuffer;
                SourceBuffer.prototype.appendBuffer = function () {};
            }"""
        )
        paused = page.evaluate("() => window.__frames")
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('picture frozen')",
            timeout=12_000,
        )
        page.evaluate("() => { SourceBuffer.prototype.appendBuffer = window.__append; }")
        # (the guard may have replaced the player while appends were swallowed: that one never
        # plays and is replaced again 5 s later, so allow a few rounds on a loaded machine)
        page.wait_for_function(f"() => window.__frames > {paused} + 25", timeout=35_000)

        # The camera stops (camsim's fault API): "camera offline since HH:MM:SS" (Beijing
        # time) within seconds, then live again on its own when it returns.
        world.cams.client.stop(1)
        stopped = time.monotonic()
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('camera offline')",
            timeout=20_000,
        )
        took = time.monotonic() - stopped
        offline = page.inner_text("#live-status")
        page.screenshot(path=str(tmp_path / "live-camera-offline.png"), full_page=True)
        assert took < 12, f"offline shown {took:.1f} s after the camera stopped"
        shown = re.search(r"since (\d{2}):(\d{2}):\d{2}", offline)
        assert shown, offline
        beijing = datetime.now(ZoneInfo("Asia/Shanghai"))
        assert (int(shown[1]), int(shown[2])) in {
            (t.hour, t.minute) for t in (beijing, beijing - timedelta(minutes=1))
        }, offline
        world.cams.client.start(1)
        before = page.evaluate("() => window.__frames")
        page.wait_for_function(
            f"() => window.__frames > {before} + 25 && "
            "document.getElementById('live-status').textContent.includes('直播 live')",
            timeout=40_000,
        )

        # The agent's feed stream goes away: the page says so, then plays again on its own.
        world.live.stop()
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent"
            ".includes('agent unreachable')",
            timeout=10_000,
        )
        page.screenshot(path=str(tmp_path / "live-agent-unreachable.png"), full_page=True)
        world.live.start()
        before = page.evaluate("() => window.__frames")
        page.wait_for_function(
            f"() => window.__frames > {before} + 25 && "
            "document.getElementById('live-status').textContent.includes('直播 live')",
            timeout=20_000,
        )

        # An H.265 camera: Chromium on Linux has no HEVC decoder for MSE; the page says so
        # (mpegts.js may log its refused SourceBuffer before the first status arrives).
        h264_problems = len(problems)
        page.select_option("#camera-select", "cam2")
        page.click("#live")
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent.includes('H.265')",
            timeout=15_000,
        )
        assert "H.265" in page.inner_text("#media-info")
        page.screenshot(path=str(tmp_path / "live-hevc.png"), full_page=True)
    finally:
        page.screenshot(path=str(tmp_path / "live-console-end.png"), full_page=True)
        page.close()
    wait_until(lambda: world.hub.viewers("cam1") == 0, 10, "the viewer left with the page")
    wait_until(lambda: world.hub.viewers("cam2") == 0, 10, "the H.265 viewer closed its socket")
    problems = problems[:h264_problems]
    # This controller runs no fleet view and no upload scheduler, so /api/v1/alerts and the
    # overview chart's /api/v1/scheduler/plan answer 503 (the console says so; Chromium logs
    # the status as a console error): those responses are expected, any other failure or
    # console error is not.
    expected = {f"503 {world.base}/api/v1/alerts", f"503 {world.base}/api/v1/scheduler/plan"}
    assert set(failed) <= expected, failed
    resource_errors = "Failed to load resource: the server responded with a status of 503"
    assert [p for p in problems if not p.startswith(resource_errors)] == [], problems
    origin = world.base.removeprefix("http://")
    foreign = [u for u in requests if u.split("/")[2] != origin]
    assert not foreign, foreign
    assert any(u.startswith("ws://") and "/api/v1/live/cam1/ws" in u for u in requests), requests


LATENCY_P95_MS = 2000  # the bound (goal p50 <= 1000)


def test_glass_to_glass_latency_per_frame(world: World, chromium: Any, tmp_path: Path) -> None:
    """camsim stamps each frame's send time (SEI); the page compares it, frame by frame, with
    the wall time Chromium presents that frame (requestVideoFrameCallback)."""
    idle(world)
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(world.base + "/")
    try:
        page.fill("#login-user", "wd-op")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.click("nav [data-view=playback]")  # the single-camera view of the console
        page.wait_for_selector("#camera-select option[value='cam1']", state="attached")
        page.evaluate(PROBE_JS, {"camera": "cam1", "session": session(world.base)})
        page.wait_for_function("() => window.__probe.frames > 25", timeout=20_000)
        page.evaluate(RESET_JS)  # the first frames wait for the player to settle
        time.sleep(6)
        stats = page.evaluate(STATS_JS)
        page.screenshot(path=str(tmp_path / "live-latency.png"), full_page=True)
    finally:
        page.close()
    figures = summary(stats)
    print(
        f"live glass-to-glass: p50 {figures['p50']:.0f} ms, p95 {figures['p95']:.0f} ms over "
        f"{figures['count']:.0f} frames ({stats['unmatched']} unmatched), first frame "
        f"{stats['first_ms']:.0f} ms after attach"
    )
    assert not problems, problems
    assert stats["stamps"] > 100, "the stream carries no wall-clock stamps"
    assert figures["count"] >= 100, stats  # ~150 frames at 25 fps in 6 s
    assert stats["unmatched"] <= figures["count"] * 0.05, stats
    assert 0 < figures["p50"] <= 1000, figures
    assert figures["p95"] <= LATENCY_P95_MS, figures
