"""Playback over real HTTP: playlists with correct types and visible gaps, segments with Range
support, live sliding playlists, evidence downloads, metrics, and every bad input of issue 6
refused with a clear reason, audited, and nothing served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api.deps import ApiSettings
from controller.exports.bundle import verify_export_file
from controller.fleet.ratelimit import RatePolicy
from controller.grants.codec import Link, decode_token, encode_token
from controller.playback.urlsign import URL_TTL_US
from tests.integration.test_api_support import (
    CITY_ADMIN,
    HOUR,
    OFFICER,
    T0,
    VIEWER,
    ApiWorld,
    assert_refused,
    segment_urls,
)
from tests.support import wait_until

S = 1_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    settings = ApiSettings(segment_refusals=RatePolicy(rate_per_s=0.5, burst=8))
    world = ApiWorld(tmp_path, settings)
    world.world.add_footage("cam-01", T0, 6)  # [0, 60 s)
    world.world.add_footage("cam-01", T0 + 120 * S, 6)  # a 60 s gap, then [120, 180 s)
    world.world.add_footage("cam-02", T0, 3)
    yield world
    world.close()


def stored_bytes(api: ApiWorld, segment_id: str) -> bytes:
    row = api.world.catalog.get_segment(segment_id)
    assert row is not None
    return api.world.store.read_bytes(row.object_key)


def seg_id(url: str) -> str:
    return url.split("?")[0].removeprefix("/play/seg/").removesuffix(".ts")


def test_playlist_shows_gaps_and_serves_segments_with_their_types(api: ApiWorld) -> None:
    grant = api.mint()
    r = api.playlist(grant["token"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.headers["cache-control"] == "no-store"
    text = r.text
    assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in text
    assert text.count("#EXT-X-DISCONTINUITY") == 1  # the 60 s hole is shown, never joined
    gap = text.index("#EXT-X-DISCONTINUITY")
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:02:00.000" in text[gap:]
    urls = segment_urls(text)
    assert len(urls) == 12
    for url in urls:
        seg = api.client.get(url)
        assert seg.status_code == 200
        assert seg.headers["content-type"] == "video/mp2t"
        assert seg.headers["accept-ranges"] == "bytes"
        assert seg.content == stored_bytes(api, seg_id(url))
    # Each playlist fetch re-signs: later, the URLs carry a later expiry.
    api.clock.advance(60)
    again = segment_urls(api.playlist(grant["token"]).text)
    assert again[0] != urls[0] and seg_id(again[0]) == seg_id(urls[0])
    # The grant in the query string works as well as in the header (for ffmpeg and VLC).
    r = api.client.get(
        "/play/cam-01.m3u8",
        params={
            "from": "2026-01-01T00:00:00Z",
            "to": "2026-01-01T01:00:00Z",
            "grant": grant["token"],
            "session": api.login(OFFICER),
        },
    )
    assert r.status_code == 200 and len(segment_urls(r.text)) == 12


def test_range_requests(api: ApiWorld) -> None:
    url = segment_urls(api.playlist(api.mint()["token"]).text)[0]
    data = stored_bytes(api, seg_id(url))
    size = len(data)
    for header, start, end in (
        ("bytes=10-19", 10, 19),
        ("bytes=100-", 100, size - 1),
        ("bytes=-50", size - 50, size - 1),
        (f"bytes=5-{size * 3}", 5, size - 1),
    ):
        r = api.client.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert r.content == data[start : end + 1]
        assert r.headers["content-type"] == "video/mp2t"
    for header in (f"bytes={size}-", "bytes=-0"):
        r = api.client.get(url, headers={"Range": header})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
        assert r.json()["reason"] == "range_not_satisfiable"
    for header in ("bytes=0-1,5-6", "bytes=x-y", "lines=1-2", "bytes=9-3"):
        r = api.client.get(url, headers={"Range": header})
        assert r.status_code == 200 and r.content == data, header


def test_every_bad_playlist_request_is_refused_audited_and_serves_nothing(
    api: ApiWorld,
) -> None:
    token = api.mint()["token"]
    now = api.clock.now_us()
    later = api.mint(not_before_us=now + 10 * 60 * S)["token"]
    short = api.mint(lifetime_s=60)["token"]
    root = decode_token(token).links[0]
    forged = encode_token([Link(root.body, root.raw, b"\x00" * 64, root.key_id)])
    revoked = api.mint()
    r = api.client.post(
        f"/api/v1/grants/{revoked['grant_id']}/revoke",
        json={"reason": "left the case"},
        headers=api.auth(CITY_ADMIN),
    )
    assert r.status_code == 200
    served_before = len(api.world.audit.search(action="playlist", limit=1000))

    def get(camera: str, headers: dict[str, str], **params: str):
        return api.client.get(f"/play/{camera}.m3u8", params=params, headers=headers)

    window = {"from": str(T0), "to": str(T0 + HOUR)}
    cases = [
        ("no session", get("cam-01", {"X-Vigil-Grant": token}, **window), 401, "unauthenticated"),
        (
            "garbage token",
            get("cam-01", api.auth(OFFICER, "@@garbage@@"), **window),
            400,
            "malformed",
        ),
        ("no token", get("cam-01", api.auth(OFFICER), **window), 400, "malformed"),
        (
            "oversize token",
            get("cam-01", api.auth(OFFICER, "A" * 70_000), **window),
            413,
            "oversize",
        ),
        (
            "forged signature",
            get("cam-01", api.auth(OFFICER, forged), **window),
            401,
            "bad_signature",
        ),
        ("not yet valid", get("cam-01", api.auth(OFFICER, later), **window), 403, "not_yet_valid"),
        ("revoked", get("cam-01", api.auth(OFFICER, revoked["token"]), **window), 403, "revoked"),
        (
            "camera out of scope",
            get("cam-02", api.auth(OFFICER, token), **window),
            403,
            "camera_out_of_scope",
        ),
        (
            "other org's camera",
            get("wd-01", api.auth(OFFICER, token), **window),
            403,
            "camera_out_of_scope",
        ),
        (
            "outside window",
            get("cam-01", api.auth(OFFICER, token), **{"from": str(T0 - HOUR), "to": str(T0)}),
            403,
            "outside_window",
        ),
        (
            "operation not granted",
            get("cam-01", api.auth(OFFICER, token), mode="live"),
            403,
            "operation_not_granted",
        ),
        ("wrong holder", get("cam-01", api.auth(VIEWER, token), **window), 403, "wrong_holder"),
        (
            "unknown camera",
            get("no-cam", api.auth(OFFICER, token), **window),
            404,
            "unknown_camera",
        ),
        (
            "bad time",
            get("cam-01", api.auth(OFFICER, token), **{"from": "soon", "to": "later"}),
            400,
            "bad_request",
        ),
        ("no range", get("cam-01", api.auth(OFFICER, token), mode="playback"), 400, "bad_request"),
    ]
    for what, response, status, reason in cases:
        # each response was made in order; its audit entry is the one at its position
        assert response.status_code == status, (what, response.text)
        assert response.headers["content-type"].startswith("application/json"), what
        assert response.json()["reason"] == reason, (what, response.json())
        assert "#EXTM3U" not in response.text
    refused = [e for e in api.world.audit.search(limit=1000) if e.outcome == "refused"]
    expected = [reason for _what, _r, _s, reason in cases]
    assert [e.reason for e in refused[: len(cases)]] == expected[::-1]
    assert all(e.action == "playlist" for e in refused[: len(cases)])
    api.clock.advance(61)
    before = len(api.entries())
    assert_refused(api, api.playlist(short), 410, "expired", before, action="playlist")
    served = api.world.audit.search(action="playlist", limit=1000)
    assert [e for e in served[: len(served) - served_before] if e.outcome == "ok"] == []


def test_segment_url_refusals(api: ApiWorld) -> None:
    grant = api.mint()
    urls = segment_urls(api.playlist(grant["token"]).text)
    path0, query0 = urls[0].split("?")
    path1, _ = urls[1].split("?")
    tampered_sig = urls[0][:-2] + ("AA" if not urls[0].endswith("AA") else "BB")
    other_grant = re.sub(r"g=[0-9a-f]{32}", "g=" + "0" * 32, urls[0])
    cases = [
        (tampered_sig, 401, "url_tampered"),
        (f"{path1}?{query0}", 401, "url_tampered"),  # a signature moved to another segment
        (other_grant, 401, "url_tampered"),
        (f"{path0}?{query0}&x=1", 401, "url_tampered"),
        (path0, 401, "url_tampered"),
        ("/play/seg/no-such-segment.ts?" + query0, 401, "url_tampered"),
        (f"{path0}?{query0}" + "&pad=" + "x" * 300, 413, "oversize"),
    ]
    for url, status, reason in cases:
        before = len(api.entries())
        r = api.client.get(url)
        assert_refused(api, r, status, reason, before, action="segment_fetch")
        assert r.headers["content-type"] != "video/mp2t"
    # Expired after 5 minutes (reload the playlist for fresh URLs); void once revoked.
    api.clock.advance(URL_TTL_US / S)
    before = len(api.entries())
    assert_refused(api, api.client.get(urls[0]), 410, "url_expired", before, action="segment_fetch")
    fresh = segment_urls(api.playlist(grant["token"]).text)
    assert api.client.get(fresh[0]).status_code == 200
    api.client.post(
        f"/api/v1/grants/{grant['grant_id']}/revoke",
        json={"reason": "test"},
        headers=api.auth(CITY_ADMIN),
    )
    before = len(api.entries())
    assert_refused(api, api.client.get(fresh[1]), 403, "revoked", before, action="segment_fetch")


def test_refused_segment_urls_are_throttled_per_client(api: ApiWorld) -> None:
    url = segment_urls(api.playlist(api.mint()["token"]).text)[0]
    bad = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    for _ in range(8):
        assert api.client.get(bad).status_code == 401
    limited = api.world.audit.search(limit=1)[0]
    assert (limited.action, limited.reason) == ("segment_fetch", "rate_limited")
    before = len(api.entries())
    for target in (bad, url):  # over the limit, even a good URL waits (and nothing is audited)
        r = api.client.get(target)
        assert r.status_code == 429 and r.json()["reason"] == "rate_limited"
    assert len(api.entries()) == before
    api.clock.advance(4)
    assert api.client.get(url).status_code == 200


def test_segment_fetches_are_audited_in_aggregate(api: ApiWorld) -> None:
    grant = api.mint()
    urls = segment_urls(api.playlist(grant["token"]).text)[:3]
    for url in urls:
        assert api.client.get(url, headers=api.auth(OFFICER)).status_code == 200
    assert api.world.audit.search(action="segment_fetch") == []
    api.http.stop()  # stopping flushes the pending tallies
    (entry,) = api.world.audit.search(action="segment_fetch")
    assert entry.grant_id == grant["grant_id"] and entry.actor_user == "officer-1"
    assert '"count":3' in entry.detail and entry.camera_id == "cam-01"


def test_live_playlist_slides_with_stable_numbering(api: ApiWorld) -> None:
    now = api.clock.now_us()
    api.world.add_footage("cam-01", now - 80 * S, 8)  # the newest ends at now
    live = api.mint(operations=["live"], from_us=now - HOUR, to_us=now + HOUR)
    params = {"mode": "live"}
    r = api.client.get("/play/cam-01.m3u8", params=params, headers=api.auth(OFFICER, live["token"]))
    assert r.status_code == 200, r.text
    text = r.text
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-PLAYLIST-TYPE" not in text
    assert "#EXT-X-MEDIA-SEQUENCE:2\n" in text  # 8 segments, the newest 6 listed
    assert len(segment_urls(text)) == 6
    api.clock.advance(10)
    api.world.add_footage("cam-01", now, 1)
    again = api.client.get(
        "/play/cam-01.m3u8", params=params, headers=api.auth(OFFICER, live["token"])
    ).text
    assert "#EXT-X-MEDIA-SEQUENCE:3\n" in again
    assert [seg_id(u) for u in segment_urls(again)[:-1]] == [
        seg_id(u) for u in segment_urls(text)[1:]
    ]
    assert api.world.audit.search(action="playlist")[0].detail.count('"operation":"live"') == 1


def test_download_is_a_signed_single_use_export(api: ApiWorld, tmp_path: Path) -> None:
    grant = api.mint(operations=["download"])
    body = {"token": grant["token"], "camera_id": "cam-01", "from_us": T0, "to_us": T0 + 40 * S}
    r = api.client.post("/api/v1/exports", json=body, headers=api.auth(OFFICER))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "vigil-export-" in disposition
    out = tmp_path / "download.tar"
    out.write_bytes(r.content)
    report = verify_export_file(out, api.world.keys.evidence_public)
    assert report.ok and report.segments == 4
    assert report.manifest["requested_by"] == "officer-1"
    wait_until(lambda: not any(api.deps.export_dir.iterdir()), 10, "the sent export to be removed")
    before = len(api.entries())
    again = api.client.post("/api/v1/exports", json=body, headers=api.auth(OFFICER))
    assert_refused(api, again, 410, "uses_exhausted", before, action="download")
    assert not any(api.deps.export_dir.iterdir())
    playback_only = api.mint()["token"]
    before = len(api.entries())
    r = api.client.post(
        "/api/v1/exports", json={**body, "token": playback_only}, headers=api.auth(OFFICER)
    )
    assert_refused(api, r, 403, "operation_not_granted", before, action="download")


def test_metrics_count_requests_refusals_and_bytes(api: ApiWorld) -> None:
    url = segment_urls(api.playlist(api.mint()["token"]).text)[0]
    size = len(api.client.get(url).content)
    api.client.get(url[:-2] + ("AA" if not url.endswith("AA") else "BB"))
    r = api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'vigil_http_requests_total{family="segment",status="200"} 1' in text
    assert 'vigil_http_refusals_total{reason="url_tampered"} 1' in text
    assert 'vigil_playlists_total{kind="vod"} 1' in text
    assert f"vigil_segment_bytes_total {size}" in text
