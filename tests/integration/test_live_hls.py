"""Short-segment HLS of the live feed (browsers without MSE, e.g. iPhone Safari), every part
real (the `world` of test_live_view.py): the playlist and its signed segments are served, the
segments start at keyframes and decode, hls.js plays them in headless Chromium, bad tokens
are refused, a revoked grant stops the playlist, and the view is audited once.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import httpx

from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.integration.test_live_view import World, audit_rows, grant, session
from tests.integration.test_live_view import world as world

PLAYLIST = "/api/v1/live/{camera}/hls/index.m3u8"


def playlist_url(world: World, camera: str, token: str, grant_token: str) -> str:
    path = PLAYLIST.format(camera=camera)
    return f"{world.base}{path}?session={quote(token)}&grant={quote(grant_token)}"


def test_the_playlist_and_its_segments_are_served_and_decode(world: World) -> None:
    token = session(world.base)
    g = grant(world.base, token, ["cam1"])
    r = httpx.get(playlist_url(world, "cam1", token, g["token"]), timeout=15)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and "#EXT-X-ENDLIST" not in lines
    uris = [ln for ln in lines if ln and not ln.startswith("#")]
    assert len(uris) >= 2 and all(u.startswith("live.cam1.") for u in uris), uris
    assert "session=" not in r.text and g["token"] not in r.text  # segments carry a signature
    base = f"{world.base}/api/v1/live/cam1/hls/"
    seg = httpx.get(base + uris[-1], timeout=10)
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
    with av.open(io.BytesIO(seg.content), mode="r", format="mpegts") as container:
        frames = list(container.decode(video=0))
    assert frames and frames[0].key_frame and len(frames) >= 20  # >= 1 s at 25 fps
    url = base + uris[-1]
    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")  # the signature's last character
    bad = httpx.get(tampered, timeout=10)
    assert bad.status_code == 401 and bad.json()["reason"] == "url_tampered", bad.text
    other = httpx.get(base + uris[-1].replace("live.cam1.", "live.cam2."), timeout=10)
    assert other.status_code == 404


def test_bad_tokens_are_refused(world: World) -> None:
    token = session(world.base)
    path = world.base + PLAYLIST.format(camera="cam1")
    assert httpx.get(path, timeout=10).status_code == 401
    assert httpx.get(f"{path}?session={quote(token)}", timeout=10).status_code == 403
    playback = grant(world.base, token, ["cam1"], "playback")
    r = httpx.get(playlist_url(world, "cam1", token, playback["token"]), timeout=10)
    assert r.status_code == 403, r.text
    other = grant(world.base, token, ["cam2"])
    r = httpx.get(playlist_url(world, "cam1", token, other["token"]), timeout=10)
    assert r.status_code == 403, r.text


def test_a_revoked_grant_stops_the_playlist_and_the_view_is_audited_once(world: World) -> None:
    token, admin = session(world.base), session(world.base, "wd-admin")
    g = grant(world.base, token, ["cam1"])
    url = playlist_url(world, "cam1", token, g["token"])
    for _ in range(3):
        assert httpx.get(url, timeout=15).status_code == 200
        time.sleep(0.5)
    r = httpx.post(
        f"{world.base}/api/v1/grants/{g['grant_id']}/revoke",
        headers={"Authorization": f"Bearer {admin}"},
        json={"reason": "test"},
    )
    assert r.status_code == 200, r.text
    revoked = time.monotonic()
    while time.monotonic() - revoked < 15:
        if httpx.get(url, timeout=15).status_code == 403:
            break
        time.sleep(0.5)
    took = time.monotonic() - revoked
    assert took < 10, f"the playlist was still served {took:.1f} s after the revocation"
    rows = audit_rows(world, g["grant_id"])
    views = [json.loads(d) for a, d in rows if a == "live_view"]
    assert len(views) == 1 and views[0]["via"] == "hls", rows


HLS_PLAY = """async (url) => {
    const v = document.getElementById('video');
    window.__frames = 0;
    const cb = () => { window.__frames += 1; v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
    const hls = new window.Hls({ lowLatencyMode: true });
    hls.on(window.Hls.Events.ERROR, (_e, d) => { if (d.fatal) window.__hlsError = d.details; });
    hls.loadSource(url);
    hls.attachMedia(v);
    v.muted = true;
    v.play().catch(() => {});
}"""


def test_chromium_plays_the_live_hls_with_hls_js(
    world: World, chromium: Any, tmp_path: Path
) -> None:
    token = session(world.base)
    g = grant(world.base, token, ["cam1"])
    page = chromium.new_page(viewport={"width": 900, "height": 700})
    problems: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(world.base + "/")
        page.evaluate("() => { document.getElementById('console').hidden = false; }")
        page.evaluate(HLS_PLAY, playlist_url(world, "cam1", token, g["token"]))
        page.wait_for_function("() => window.__frames > 50 || window.__hlsError", timeout=30_000)
        page.screenshot(path=str(tmp_path / "live-hls.png"), full_page=True)
        assert page.evaluate("() => window.__hlsError || null") is None
    finally:
        page.close()
    assert not problems, problems
    origin = world.base.removeprefix("http://")
    assert all(u.split("/")[2] == origin for u in requests if u.startswith("http")), requests
    assert any("/hls/live.cam1." in u for u in requests)
