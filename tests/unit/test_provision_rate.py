"""verify's frame-rate check (provisioning/acceptance.py) and where the expected rate comes
from: `device add --fps`, the CSV's `fps` column, discover's ONVIF FrameRateLimit."""

from __future__ import annotations

import pytest

from provisioning.acceptance import FPS_FLOOR, judge, rate_row, render
from provisioning.discover import parse_frame_rate
from provisioning.spec import SpecError, check_fps, parse_camera, parse_rows, with_fps
from vigil_camsim.onvif import OnvifCamera, answer

NOW = 1_800_000_000_000_000


def _facts(fps: object) -> dict[str, object]:
    return {
        "enrolled": True, "retired": False, "online": True, "last_seen_us": NOW,
        "clock_offset_s": 0.0,
        "cameras": [{"camera_id": "c1", "state": "streaming", "frame_age_s": 0.2, "fps": fps,
                     "segments": 1, "hash_ok": True}],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fps", "expected", "passed", "fix"),
    [
        (25.0, 25.0, True, ""),
        (22.0, 25.0, True, ""),  # within 15 %
        (20.0, 25.0, False, "fix_rate_low"),
        (12.4, 25.0, False, "fix_rate_low"),  # e.g. a camera left at half rate
        (25.0, 15.0, False, "fix_rate_high"),
        (8.0, 0.0, True, ""),  # nothing expected: the floor
        (FPS_FLOOR - 0.5, 0.0, False, "fix_rate_low"),
        (0.0, 25.0, False, "fix_rate_none"),
        (None, 25.0, False, "fix_rate_none"),
        ("25", 25.0, False, "fix_rate_none"),  # a forged/malformed fact is no measurement
        (True, 1.0, False, "fix_rate_none"),
        (-3.0, 25.0, False, "fix_rate_none"),
    ],
)
def test_the_rate_row(fps: object, expected: float, passed: bool, fix: str) -> None:
    row = rate_row("c1", fps, expected)
    assert (row.passed, row.fix) == (passed, fix)


def test_verify_fails_a_camera_below_its_expected_rate_and_says_what_to_do() -> None:
    rows = judge(_facts(12.5), NOW, {"c1": 25.0})
    assert [r.key for r in rows if not r.passed] == ["rate"]
    zh = render(rows)
    assert "摄像机 c1 帧率" in zh and "12.5 / 25 fps" in zh and "帧率偏低" in zh
    assert "验收未通过" in zh
    assert "frame rate too low" in render(rows, "en")
    assert all(r.passed for r in judge(_facts(25.0), NOW, {"c1": 25.0}))
    assert all(r.passed for r in judge(_facts(25.0), NOW, {"other": 5.0}))  # floor for c1


def test_expected_rates_come_from_the_installer_and_are_checked() -> None:
    assert check_fps("") == 0.0 and check_fps("25") == 25.0 and check_fps(" 12.5 ") == 12.5
    for bad in ("fast", "0", "-5", "500", "nan"):
        with pytest.raises(SpecError, match="frame rate"):
            check_fps(bad)
    cams = with_fps([parse_camera("a=rtsp://h/a"), parse_camera("b=nvr:/d")], 15.0)
    assert [c.fps for c in cams] == [15.0, 15.0]
    good, bad_rows = parse_rows(
        "device_id,county,site,kind,cameras,fps\n"
        "n1,wudu,v1,nvr,a=rtsp://h/a,25\n"
        "n2,wudu,v1,nvr,a2=rtsp://h/a,lots\n"
        "n3,wudu,v1,nvr,a3=rtsp://h/a,\n"
    )
    assert [(g.device_id, g.cameras[0].fps) for g in good] == [("n1", 25.0), ("n3", 0.0)]
    assert bad_rows[0][0] == 3 and "frame rate" in bad_rows[0][1]


def test_discover_reads_the_encoders_frame_rate_limit() -> None:
    cam = OnvifCamera("cam-1", "rtsp://10.0.0.2/cam/1", "H264", 1920, 1080, fps=15)
    reply = answer("GetProfiles", cam, "http://10.0.0.2/onvif") or b""
    assert parse_frame_rate(reply) == 15.0
    for junk in (b'<e xmlns="urn:x"/>', reply.replace(b">15<", b">-1<"),
                 reply.replace(b">15<", b">fast<")):  # fmt: skip
        assert parse_frame_rate(junk) == 0.0
