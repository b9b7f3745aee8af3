"""ONVIF replies parsed (provisioning/discover.py) against what the emulator answers
(vigil_camsim/onvif.py), pure: no sockets."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from provisioning.discover import (
    DiscoverError,
    Found,
    name_from_scopes,
    parse_media_xaddr,
    parse_profile,
    parse_stream_uri,
    security_header,
)
from vigil_camsim.onvif import OnvifCamera, answer, cameras_from

CAM = OnvifCamera("cam-2", "rtsp://10.0.0.2:554/cam/2", "H265", 704, 576)
URL = "http://10.0.0.2/onvif/cam-2/device_service"


def test_the_emulators_answers_parse_into_uri_codec_and_resolution() -> None:
    assert parse_media_xaddr(answer("GetCapabilities", CAM, URL) or b"", "x") == URL
    assert parse_profile(answer("GetProfiles", CAM, URL) or b"") == ("main", "h265", 704, 576)
    assert parse_stream_uri(answer("GetStreamUri", CAM, URL) or b"") == CAM.rtsp_url
    assert answer("SetSystemDateAndTime", CAM, URL) is None


def test_bad_replies_are_named() -> None:
    with pytest.raises(DiscoverError, match="not XML"):
        parse_profile(b"<html>")
    with pytest.raises(DiscoverError, match="no video profile"):
        parse_profile(b'<e xmlns="urn:x"/>')
    with pytest.raises(DiscoverError, match="no RTSP"):
        parse_stream_uri(b"<e/>")


def test_ws_security_digest_is_onvifs() -> None:
    now = datetime(2026, 12, 3, 16, 0, 0, tzinfo=UTC)
    header = security_header("admin", "pw", now, b"n" * 16)
    expected = base64.b64encode(hashlib.sha1(b"n" * 16 + b"2026-12-03T16:00:00Z" + b"pw").digest())
    assert expected.decode() in header and "pw<" not in header
    assert security_header("", "pw", now, b"n") == ""


def test_camera_ids_come_from_the_onvif_name_or_the_address() -> None:
    assert (
        name_from_scopes(["onvif://www.onvif.org/type/video", "onvif://www.onvif.org/name/cam-1"])
        == "cam-1"
    )
    assert Found("http://x/", "cam-1").camera_id == "cam-1"
    assert Found("http://192.168.1.64:80/onvif", "HIK VISION").camera_id == "cam-192-168-1-64"


def test_the_emulator_mirrors_serves_cameras() -> None:
    cams = cameras_from("rtsp://h:8554/", 2, "h264", ["2=h265"], (640, 360))
    assert [(c.camera_id, c.rtsp_url, c.encoding) for c in cams] == [
        ("cam-1", "rtsp://h:8554/cam/1", "H264"),
        ("cam-2", "rtsp://h:8554/cam/2", "H265"),
    ]
