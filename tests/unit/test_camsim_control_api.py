"""The fault-control API parser: every route, and every malformed request refused with a 4xx."""

from __future__ import annotations

import json

import pytest

from vigil_camsim import control_api as api


def parse(method: str, path: str, body: object = None) -> object:
    raw = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
    return api.parse_request(method, path, raw)


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/health", None, api.Health()),
        ("GET", "/cameras", None, api.ListCameras()),
        ("GET", "/cameras/", None, api.ListCameras()),
        ("GET", "/cameras/7", None, api.GetCamera("7")),
        ("GET", "/cameras/gate-A_1?x=1", None, api.GetCamera("gate-A_1")),
        ("POST", "/cameras/1/stop", None, api.CameraAction("1", "stop")),
        ("POST", "/cameras/1/start", b"{}", api.CameraAction("1", "start")),
        ("POST", "/cameras/1/stall", None, api.CameraAction("1", "stall")),
        ("POST", "/cameras/1/unstall", None, api.CameraAction("1", "unstall")),
        ("POST", "/cameras/1/drop/", None, api.CameraAction("1", "drop")),
        (
            "POST",
            "/cameras/2/resolution",
            {"width": 640, "height": 360},
            api.SetResolution("2", 640, 360),
        ),
        ("POST", "/cameras/2/broken_gop", None, api.BreakGop("2", 1)),
        ("POST", "/cameras/2/broken_gop", {"gops": 3}, api.BreakGop("2", 3)),
        ("POST", "/cameras", None, api.AddCamera(None, None, None, None)),
        (
            "POST",
            "/cameras",
            {"id": "x1", "label": "GATE 9", "width": 640, "height": 360},
            api.AddCamera("x1", "GATE 9", 640, 360),
        ),
    ],
)
def test_routes(method: str, path: str, body: object, expected: object) -> None:
    assert parse(method, path, body) == expected


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("GET", "/nope", None, 404, "no route"),
        ("GET", "/cameras/../etc/passwd", None, 404, "unknown camera"),
        ("GET", "/cameras/" + "x" * 33, None, 404, "unknown camera"),
        ("POST", "/cameras/1/explode", None, 404, "unknown action"),
        ("GET", "/cameras/1/stop", None, 405, "POST"),
        ("DELETE", "/cameras/1", None, 405, "GET"),
        ("PUT", "/cameras", None, 405, "not allowed"),
        ("POST", "/health", None, 405, "GET"),
        ("POST", "/cameras/1/resolution", None, 400, "JSON body required"),
        ("POST", "/cameras/1/resolution", b"{not json", 400, "malformed JSON"),
        ("POST", "/cameras/1/resolution", b"\xff\xfe", 400, "malformed JSON"),
        ("POST", "/cameras/1/resolution", [640, 360], 400, "object"),
        ("POST", "/cameras/1/resolution", {"width": 640}, 400, "'height'"),
        ("POST", "/cameras/1/resolution", {"width": "640", "height": 360}, 400, "integer"),
        ("POST", "/cameras/1/resolution", {"width": True, "height": 360}, 400, "integer"),
        ("POST", "/cameras/1/resolution", {"width": 641, "height": 360}, 400, "even"),
        ("POST", "/cameras/1/resolution", {"width": 99999, "height": 360}, 400, "16..3840"),
        ("POST", "/cameras/1/resolution", {"width": 640, "height": 360, "x": 1}, 400, "unknown"),
        ("POST", "/cameras/1/broken_gop", {"gops": 0}, 400, "1..10"),
        ("POST", "/cameras/1/broken_gop", {"gops": 1.5}, 400, "integer"),
        ("POST", "/cameras", {"id": "a/b"}, 400, "'id'"),
        ("POST", "/cameras", {"id": 5}, 400, "'id'"),
        ("POST", "/cameras", {"label": "<script>"}, 400, "'label'"),
        ("POST", "/cameras", {"width": 640}, 400, "both"),
        ("POST", "/cameras", {"width": 641, "height": 360}, 400, "even"),
        ("POST", "/cameras/1/stop", b"x" * (api.MAX_BODY_BYTES + 1), 413, "larger"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(
    method: str, path: str, body: object, status: int, words: str
) -> None:
    result = parse(method, path, body)
    assert isinstance(result, api.ApiError), result
    assert result.status == status
    assert words in result.message
    assert result.body() == {"error": result.message, "status": status}


@pytest.mark.parametrize(
    ("header", "status"),
    [("abc", 400), ("-1", 400), (str(api.MAX_BODY_BYTES + 1), 413)],
)
def test_bad_content_length_is_refused_before_reading(header: str, status: int) -> None:
    error = api.check_body_length(header)
    assert error is not None and error.status == status


@pytest.mark.parametrize("header", [None, "", "0", str(api.MAX_BODY_BYTES)])
def test_acceptable_content_length(header: str | None) -> None:
    assert api.check_body_length(header) is None
