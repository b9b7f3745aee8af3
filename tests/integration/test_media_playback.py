"""H.265 and audio through the controller: catalog media fields, the API, original H.265 for
ffmpeg-style clients, the H.264 rendition (cache, concurrency bound, corrupt input, signed URLs)
and exports that carry the audio. Real controller (SQLite, local store, mutual-TLS ingest,
HTTP as `serve` wires it), segments made with PyAV (libx265/libx264 + AAC)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.media.renditions import RenditionCache
from controller.media.transcode import TranscodeStats, transcode_h264
from tests.integration.test_media_support import (
    AVC_CAM,
    BAD_CAM,
    HEVC_CAM,
    MediaWorld,
    media_world,
)
from tests.support import require_binary


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaWorld]:
    with media_world(tmp_path_factory.mktemp("media")) as w:
        yield w


def ffprobe_streams(target: str) -> list[dict[str, object]]:
    ffprobe = require_binary("ffprobe", "apt-get install -y ffmpeg")
    out = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,profile,width,height,sample_rate,channels",
            "-of",
            "json",
            target,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    streams: list[dict[str, object]] = json.loads(out.stdout)["streams"]
    return streams


def test_catalog_records_each_segments_media(world: MediaWorld) -> None:
    catalog = world.controller.catalog
    hevc = catalog.segment_media(world.ids[HEVC_CAM])
    assert len(hevc) == len(world.hevc) == 4
    for row in hevc.values():
        assert (row.video_codec, row.video_profile, row.width, row.height) == (
            "hevc",
            "Main",
            320,
            240,
        )
        assert row.frame_rate == 25.0
        assert (row.audio_codec, row.audio_sample_rate, row.audio_channels) == ("aac", 16000, 1)
        assert row.probe_error == "" and 0 < row.probe_us < 200_000
    avc = catalog.segment_media(world.ids[AVC_CAM])
    assert {(m.video_codec, m.audio_codec) for m in avc.values()} == {("h264", "aac")}
    current = catalog.camera_media()
    assert current[HEVC_CAM].segment_id == world.ids[HEVC_CAM][-1]
    assert current[AVC_CAM].video_codec == "h264"
    costs = sorted(m.probe_us for m in [*hevc.values(), *avc.values()])
    print(f"probe cost per segment: median {costs[len(costs) // 2]} us, max {costs[-1]} us")


def test_a_segment_that_cannot_be_probed_is_stored_with_empty_media(world: MediaWorld) -> None:
    from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
    from tests.integration.test_media_support import upload_segment

    stub = ingest_pb2_grpc.IngestStub(world.channel)
    junk = b"\x00not a video at all" * 4000
    seg = world.hevc[0]
    reply = upload_segment(stub, BAD_CAM, "bad1-junk-000", seg, data=junk)
    assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED
    stored = world.controller.catalog.get_segment("bad1-junk-000")
    assert stored is not None and stored.size_bytes == len(junk)
    assert world.controller.store.read_bytes(stored.object_key) == junk  # nothing lost
    media = world.controller.catalog.segment_media(["bad1-junk-000"])["bad1-junk-000"]
    assert media.video_codec == "" and media.audio_codec == ""
    assert "cannot read the container" in media.probe_error


def test_api_shows_current_and_per_segment_media(world: MediaWorld) -> None:
    session = world.login()
    auth = {"Authorization": f"Bearer {session}"}
    cams = httpx.get(f"{world.base}/api/v1/cameras", headers=auth).json()
    by_id = {c["camera_id"]: c for c in cams}
    assert by_id[HEVC_CAM]["media"] == {
        "video_codec": "hevc",
        "video_profile": "Main",
        "width": 320,
        "height": 240,
        "frame_rate": 25.0,
        "audio_codec": "aac",
        "audio_sample_rate": 16000,
        "audio_channels": 1,
    }
    assert by_id[AVC_CAM]["media"]["video_codec"] == "h264"
    one = httpx.get(f"{world.base}/api/v1/cameras/{HEVC_CAM}", headers=auth)
    assert one.status_code == 200 and one.json()["media"]["video_codec"] == "hevc"
    missing = httpx.get(f"{world.base}/api/v1/cameras/nope", headers=auth)
    assert missing.status_code == 404
    now = world.controller.clock.now_us()
    listing = httpx.get(
        f"{world.base}/api/v1/cameras/{HEVC_CAM}/segments",
        params={"from": str(now - 600_000_000), "to": str(now)},
        headers=auth,
    ).json()
    assert [s["segment_id"] for s in listing["segments"]] == world.ids[HEVC_CAM]
    assert {s["media"]["video_codec"] for s in listing["segments"]} == {"hevc"}
    assert {s["media"]["audio_codec"] for s in listing["segments"]} == {"aac"}


def test_ffmpeg_style_clients_get_the_original_hevc_bit_exact(world: MediaWorld) -> None:
    urls = world.playlist(HEVC_CAM)
    assert len(urls) == 4 and all("/play/seg/" in u for u in urls)
    codecs = {s["codec_name"] for s in ffprobe_streams(urls[0])}
    assert codecs == {"hevc", "aac"}
    for url, made in zip(urls, world.hevc, strict=True):
        body = httpx.get(url, timeout=30).content
        assert hashlib.sha256(body).digest() == made.sha256
    session = world.login()
    grant = world.grant(session, HEVC_CAM, ["playback"])
    playlist = world.playlist_url(session, grant, HEVC_CAM)
    codecs = {s["codec_name"] for s in ffprobe_streams(playlist)}
    assert codecs == {"hevc", "aac"}


def test_h264_rendition_playlist_converts_only_what_needs_it(world: MediaWorld) -> None:
    hevc = world.playlist(HEVC_CAM, "h264")
    assert len(hevc) == 4 and all("/play/h264/" in u for u in hevc)
    avc = world.playlist(AVC_CAM, "h264")
    assert avc and all("/play/seg/" in u for u in avc)  # H.264 already: originals
    session = world.login()
    grant = world.grant(session, HEVC_CAM, ["playback"])
    bad = httpx.get(world.playlist_url(session, grant, HEVC_CAM, "h265"))
    assert bad.status_code == 400 and "rendition" in bad.json()["message"]


def test_rendition_is_h264_with_the_audio_and_cached(world: MediaWorld) -> None:
    cache = world.deps.playback.renditions
    assert cache is not None
    url = world.playlist(HEVC_CAM, "h264")[1]
    before = (cache.counters.conversions, cache.counters.hits)
    first = httpx.get(url, timeout=60)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "video/mp2t"
    streams = {s["codec_name"]: s for s in ffprobe_streams(url)}
    assert set(streams) == {"h264", "aac"}
    assert (streams["h264"]["width"], streams["h264"]["height"]) == (320, 240)
    after_first = (cache.counters.conversions, cache.counters.hits)
    second = httpx.get(url, timeout=60)
    assert second.content == first.content
    after_second = (cache.counters.conversions, cache.counters.hits)
    assert after_second[0] == after_first[0]  # no second conversion
    assert after_second[1] > after_first[1]  # a cache hit
    assert after_first[0] in (before[0], before[0] + 1)
    ranged = httpx.get(url, headers={"Range": "bytes=0-187"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == first.content[:188]
    # audited like original segments: one aggregated segment_fetch row per grant and viewer
    grant_id = dict(p.split("=", 1) for p in url.partition("?")[2].split("&"))["g"]
    world.deps.playback.flush()
    fetches = [
        e
        for e in world.deps.audit.search(action="segment_fetch")
        if e.grant_id == grant_id and e.outcome == "ok"
    ]
    assert fetches and sum(json.loads(e.detail)["count"] for e in fetches) >= 3
    assert {e.camera_id for e in fetches} == {HEVC_CAM}


def test_rendition_urls_are_signed_like_segment_urls(world: MediaWorld) -> None:
    url = world.playlist(HEVC_CAM, "h264")[0]
    original = world.playlist(HEVC_CAM)[0]
    path, _, query = url.partition("?")
    # an original's valid signature replayed on the rendition route
    forged = path + "?" + original.partition("?")[2]
    r = httpx.get(forged)
    assert r.status_code == 401 and r.json()["reason"] == "url_tampered"
    # a rendition signature replayed on the original route
    r = httpx.get(original.partition("?")[0] + "?" + query)
    assert r.status_code == 401 and r.json()["reason"] == "url_tampered"
    # another segment's URL, and an altered expiry
    other = world.playlist(HEVC_CAM, "h264")[1].partition("?")[0]
    assert httpx.get(other + "?" + query).status_code == 401
    params = dict(p.split("=", 1) for p in query.split("&"))
    params["e"] = str(int(params["e"]) + 600)
    altered = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    assert httpx.get(altered).json()["reason"] == "url_tampered"
    # properly signed but expired
    now_s = world.controller.clock.now_us() // 1_000_000
    signer = world.deps.playback.signer
    expired = signer.url_maker("/play/h264/", params["g"], now_s - 5, rendition="h264")(
        world.ids[HEVC_CAM][0]
    )
    r = httpx.get(world.base + expired)
    assert r.status_code == 410 and r.json()["reason"] == "url_expired"
    refused = [
        e
        for e in world.deps.audit.search(action="segment_fetch")
        if e.outcome == "refused" and json.loads(e.detail).get("rendition") == "h264"
    ]
    assert refused, "refused rendition fetches are audited"


def test_corrupt_hevc_segment_is_a_clear_error_and_the_controller_carries_on(
    world: MediaWorld,
) -> None:
    assert world.controller.catalog.segment_media(["bad1-000"])["bad1-000"].video_codec == "hevc"
    urls = world.playlist(BAD_CAM, "h264")
    bad = [u for u in urls if "/bad1-000.ts" in u]
    assert bad
    r = httpx.get(bad[0], timeout=60)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "transcode_failed"
    assert "bad1-000" in body["message"] and "H.264" in body["message"]
    again = httpx.get(bad[0], timeout=60)  # remembered: no second attempt, same answer
    assert again.status_code == 422
    original = [u for u in world.playlist(BAD_CAM) if "/bad1-000.ts" in u][0]
    assert httpx.get(original, timeout=30).status_code == 200  # the stored bytes are intact
    good = world.playlist(HEVC_CAM, "h264")[2]
    assert httpx.get(good, timeout=60).status_code == 200  # still serving


def test_conversions_beyond_the_limit_get_503_with_retry_after(
    world: MediaWorld, tmp_path: Path
) -> None:
    gate = threading.Event()
    started = threading.Event()

    def held(src: Path, dst: Path, preset: str) -> TranscodeStats:
        started.set()
        gate.wait(30)
        return transcode_h264(src, dst, preset)

    deps = world.deps
    saved = deps.playback.renditions
    deps.playback.renditions = RenditionCache(tmp_path / "r", 64 << 20, 1, 0.3, convert=held)
    try:
        urls = world.playlist(HEVC_CAM, "h264")
        results: dict[str, int] = {}
        first = threading.Thread(
            target=lambda: results.update(a=httpx.get(urls[0], timeout=60).status_code)
        )
        first.start()
        assert started.wait(20)
        busy = httpx.get(urls[1], timeout=30)
        assert busy.status_code == 503, busy.text
        assert busy.json()["reason"] == "transcode_busy"
        assert int(busy.headers["retry-after"]) >= 1
        gate.set()
        first.join(60)
        assert results == {"a": 200}
        assert httpx.get(urls[1], timeout=60).status_code == 200  # a slot is free again
    finally:
        gate.set()
        deps.playback.renditions = saved


def test_exports_carry_the_audio_and_list_the_media(world: MediaWorld, tmp_path: Path) -> None:
    session = world.login()
    grant = world.grant(session, HEVC_CAM, ["download"])
    now = world.controller.clock.now_us()
    r = httpx.post(
        f"{world.base}/api/v1/exports",
        json={
            "token": grant,
            "camera_id": HEVC_CAM,
            "from_us": now - 10 * 60 * 1_000_000,
            "to_us": now,
        },
        headers={"Authorization": f"Bearer {session}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        entries = manifest["segments"]
        assert len(entries) == 4
        for entry, made in zip(entries, world.hevc, strict=True):
            assert entry["media"]["video_codec"] == "hevc"
            assert entry["media"]["audio_codec"] == "aac"
            assert entry["media"]["audio_sample_rate"] == 16000
            data = tar.extractfile(entry["file"]).read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).digest() == made.sha256  # audio and all, unchanged
        first = tmp_path / "first.ts"
        first.write_bytes(tar.extractfile(entries[0]["file"]).read())  # type: ignore[union-attr]
    assert {s["codec_name"] for s in ffprobe_streams(str(first))} == {"hevc", "aac"}


def test_live_playlists_take_the_rendition_too(world: MediaWorld) -> None:
    session = world.login()
    grant = httpx.post(
        f"{world.base}/api/v1/grants",
        json={
            "operations": ["live"],
            "cameras": [HEVC_CAM],
            "from_us": world.controller.clock.now_us() - 5 * 60 * 1_000_000,
            "to_us": world.controller.clock.now_us() + 5 * 60 * 1_000_000,
            "purpose": "live rendition",
        },
        headers={"Authorization": f"Bearer {session}"},
    ).json()["token"]
    r = httpx.get(
        f"{world.base}/play/{HEVC_CAM}.m3u8",
        params={"mode": "live", "rendition": "h264", "grant": grant, "session": session},
    )
    assert r.status_code == 200, r.text
    urls = [line for line in r.text.splitlines() if line.startswith("/play/")]
    assert urls and all(u.startswith("/play/h264/") for u in urls)
    assert httpx.get(world.base + urls[-1], timeout=60).status_code == 200
