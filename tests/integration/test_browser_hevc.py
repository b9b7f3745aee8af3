"""An H.265 camera with AAC audio plays, with sound, in the console in headless Chromium.

Debian's Chromium has no HEVC decoder: the console sees `MediaSource.isTypeSupported(hvc1)`
false and asks for the H.264 rendition, which the controller converts on first request and
caches. Segments are made with PyAV (libx265 + AAC) and uploaded through the real mutual-TLS
ingest into a controller wired as `serve` wires it. The video's time must advance, frames and
audio must be decoded, the console must log no error, and every request must stay on the
controller's origin (hls.js is vendored, nothing comes from the internet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.integration.test_media_support import (
    HEVC_CAM,
    PASSWORD,
    USER,
    MediaWorld,
    media_world,
)

HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"'


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaWorld]:
    with media_world(tmp_path_factory.mktemp("hevc-browser"), fleet=True) as w:
        yield w


def test_hevc_camera_plays_with_sound_in_chromium(
    world: MediaWorld, chromium: Any, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
    )
    page.goto(world.base + "/")
    assert page.evaluate(f"() => MediaSource.isTypeSupported('{HEVC_TYPE}')") is False
    assert page.inner_text("#hls-status") == ""  # hls.js is installed
    page.fill("#login-user", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.click("nav [data-view=playback]")  # the single-camera view of the console
    page.wait_for_selector(f"#camera-select option[value='{HEVC_CAM}']", state="attached")
    # The camera list is drawn after the select is filled: wait for its row, then assert.
    expect(page.locator("#cameras")).to_contain_text("HEVC 320x240 25 fps, aac 16 kHz")
    page.select_option("#camera-select", HEVC_CAM)
    page.click("#play")
    try:
        page.wait_for_function(
            "() => document.getElementById('video').currentTime > 2.0", timeout=60_000
        )
        page.wait_for_function(
            "() => document.getElementById('video').webkitAudioDecodedByteCount > 0",
            timeout=20_000,
        )
    finally:
        page.screenshot(path=str(tmp_path / "hevc-console.png"))
    stats = page.evaluate(
        """() => {
            const v = document.getElementById('video');
            const q = v.getVideoPlaybackQuality();
            return {
                time: v.currentTime,
                frames: q.totalVideoFrames,
                dropped: q.droppedVideoFrames,
                audioBytes: v.webkitAudioDecodedByteCount,
                videoBytes: v.webkitVideoDecodedByteCount,
                width: v.videoWidth,
                height: v.videoHeight,
            };
        }"""
    )
    assert stats["frames"] > 0 and stats["videoBytes"] > 0, stats
    assert stats["audioBytes"] > 0, stats
    assert (stats["width"], stats["height"]) == (320, 240), stats
    info = page.inner_text("#media-info")
    assert "avc1" in info and "mp4a" in info, info  # H.264 rendition with the AAC track
    assert "本浏览器使用 H.264" in page.inner_text("#status")  # zh-CN first
    # This controller runs no upload scheduler: the overview's chart asks for the plan once
    # and is answered 503 scheduler_unavailable (the console then says so in a note; Chromium
    # logs the status as a console error). That one response is expected, nothing else.
    no_plan = f"HTTP 503 {world.base}/api/v1/scheduler/plan"
    if no_plan in problems:
        resource_503 = "Failed to load resource: the server responded with a status of 503"
        problems = [p for p in problems if p != no_plan and not p.startswith(resource_503)]
    assert not problems, problems
    own = (world.base + "/", f"blob:{world.base}/")  # hls.js runs its worker from a blob
    assert requests and all(u.startswith(own) for u in requests), [
        u for u in requests if not u.startswith(own)
    ]
    renditions = [u for u in requests if "/play/h264/" in u]
    assert renditions, "the console asked for the H.264 rendition"
    assert any("rendition=h264" in u for u in requests if ".m3u8" in u)
    page.close()
