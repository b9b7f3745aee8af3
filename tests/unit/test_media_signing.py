"""Rendition URLs are signed for the rendition: no replay between original and H.264 routes,
and the manifest lists the media of each exported segment (pure, no I/O)."""

from __future__ import annotations

import json

import pytest

from controller.exports.manifest import ExportInfo, build_manifest, media_facts
from controller.grants.errors import GrantRefused, Reason
from controller.ingest.commit import media_row
from controller.ingest.rules import Header
from controller.media.probe import MediaInfo
from controller.playback.urlsign import UrlSigner

KEY = b"k" * 32
GRANT = "0123456789abcdef0123456789abcdef"
NOW_US = 1_800_000_000_000_000
EXPIRES = NOW_US // 1_000_000 + 300


def query_of(url: str) -> str:
    return url.partition("?")[2]


def test_a_rendition_url_verifies_only_for_its_rendition() -> None:
    signer = UrlSigner.single(KEY)
    h264 = signer.url_maker("/play/h264/", GRANT, EXPIRES, rendition="h264")("seg-1")
    original = signer.url_maker("/play/seg/", GRANT, EXPIRES)("seg-1")
    assert h264.startswith("/play/h264/seg-1.ts?")
    assert signer.check_query("seg-1", query_of(h264), NOW_US, rendition="h264") == GRANT
    assert signer.check_query("seg-1", query_of(original), NOW_US) == GRANT
    with pytest.raises(GrantRefused) as info:
        signer.check_query("seg-1", query_of(original), NOW_US, rendition="h264")
    assert info.value.reason is Reason.URL_TAMPERED
    with pytest.raises(GrantRefused) as info:
        signer.check_query("seg-1", query_of(h264), NOW_US)
    assert info.value.reason is Reason.URL_TAMPERED
    with pytest.raises(GrantRefused):  # another segment's signature
        signer.check_query("seg-2", query_of(h264), NOW_US, rendition="h264")


def test_an_expired_rendition_url_is_refused_as_expired() -> None:
    signer = UrlSigner.single(KEY)
    url = signer.url_maker("/play/h264/", GRANT, EXPIRES, rendition="h264")("seg-1")
    with pytest.raises(GrantRefused) as info:
        signer.check_query("seg-1", query_of(url), (EXPIRES + 1) * 1_000_000, rendition="h264")
    assert info.value.reason is Reason.URL_EXPIRED


class Seg:
    def __init__(self, segment_id: str, start_us: int) -> None:
        self.segment_id = segment_id
        self.start_us = start_us
        self.end_us = start_us + 2_000_000
        self.size_bytes = 100
        self.sha256 = "a" * 64
        self.prev_sha256 = ""


def header(segment_id: str = "s1") -> Header:
    return Header(
        segment_id=segment_id,
        camera_id="cam1",
        start_us=NOW_US,
        duration_us=2_000_000,
        size_bytes=100,
        sha256="a" * 64,
        prev_sha256="",
        offset=0,
        container="ts",
        flags=0,
    )


def test_media_row_and_manifest_facts() -> None:
    info = MediaInfo("hevc", "Main", 320, 240, 25.0, "aac", 16000, 1, "", 700)
    row = media_row(header(), info)
    assert (row.segment_id, row.camera_id, row.start_us) == ("s1", "cam1", NOW_US)
    assert (row.video_codec, row.audio_codec, row.probe_us) == ("hevc", "aac", 700)
    facts = media_facts(row)
    assert facts == {
        "video_codec": "hevc",
        "video_profile": "Main",
        "width": 320,
        "height": 240,
        "frame_rate": 25.0,
        "audio_codec": "aac",
        "audio_sample_rate": 16000,
        "audio_channels": 1,
    }
    failed = media_row(header("s2"), MediaInfo(error="cannot read the container: x" * 100))
    assert failed.video_codec == "" and len(failed.probe_error) == 512
    assert media_facts(failed) == {}
    export = ExportInfo("e", "cam1", "a", 0, 1, GRANT, (GRANT,), "", "", "p", "u", "o", 0)
    doc = json.loads(
        build_manifest(
            export,
            [Seg("s1", NOW_US), Seg("s2", NOW_US + 2_000_000)],
            "k",
            {
                "s1": facts,
                "s2": {},
            },
        )
    )
    assert doc["segments"][0]["media"]["video_codec"] == "hevc"
    assert doc["segments"][0]["media"]["audio_codec"] == "aac"
    assert doc["segments"][1]["media"] == {}
