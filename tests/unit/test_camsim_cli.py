"""vigil-camsim's command line, the launcher's argv and the client's parsing (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil_camsim.__main__ import build_parser, main
from vigil_camsim.client import CameraInfo, CamsimClient
from vigil_camsim.launcher import SERVER_SCRIPT, CamsimOptions


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["handheld", "--help"]])
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: vigil-camsim" in out


def test_serve_help_names_the_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--cameras", "--port", "--control-port", "--width", "--height", "--fps"):
        assert flag in out
    assert "--bitrate" in out and "--gop-seconds" in out and "--label-prefix" in out


def test_serve_defaults_are_1080p25_4mbit() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.width, args.height, args.fps, args.bitrate, args.gop_seconds) == (
        1920,
        1080,
        25,
        4000,
        2.0,
    )


def test_no_subcommand_and_bad_format_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e1:
        main([])
    with pytest.raises(SystemExit) as e2:
        main(["handheld", "--dir", "/tmp/x", "--format", "avi"])
    assert e1.value.code == 2 and e2.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_serve_without_the_interpreter_says_what_to_install(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--python", "/nonexistent/python3"]) == 2
    assert "gir1.2-gst-rtsp-server-1.0" in capsys.readouterr().err


def test_handheld_refuses_bad_settings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["handheld", "--dir", str(tmp_path), "--width", "641"]) == 2
    assert "even" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_options_build_the_server_command_line() -> None:
    argv = CamsimOptions(cameras=3, width=640, height=360, cache_dir=Path("/c")).argv(
        "/usr/bin/python3", 1000, 1001
    )
    assert argv[:2] == ["/usr/bin/python3", str(SERVER_SCRIPT)]
    for arg in (
        "--cameras=3",
        "--port=1000",
        "--control-port=1001",
        "--width=640",
        "--cache-dir=/c",
    ):
        assert arg in argv


def test_camera_info_from_json() -> None:
    info = CameraInfo.from_json(
        {
            "id": "1",
            "url": "rtsp://127.0.0.1:1/cam/1",
            "label": "CAM 1",
            "width": 320,
            "height": 180,
            "fps": 25,
            "bitrate_kbps": 300,
            "gop_frames": 25,
            "loop_frames": 50,
            "state": "running",
            "stalled": False,
            "clients": 0,
            "streams": 0,
            "frames_sent": 0,
            "frames_withheld": 0,
            "broken_gops_pending": 0,
            "pending_resolution": [640, 360],
        }
    )
    assert info.running and info.gop_seconds == 1.0 and info.pending_resolution == (640, 360)


@pytest.mark.parametrize("url", ["https://127.0.0.1:1", "http://127.0.0.1", "127.0.0.1:80"])
def test_client_needs_an_http_url_with_a_port(url: str) -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        CamsimClient(url)
