"""vigil-camsim profiles against real clients: each profile's RTSP stream read with PyAV and
ffmpeg (codec, profile, B-frames, audio, keyframe cadence, A/V timestamps), size presets,
long GOPs, bad profile input, and NVR folders named in local time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import av.error
import pytest

from tests.fixtures.camsim import TEST_DEFAULTS
from tests.support import port_open
from vigil_camsim.client import CamsimApiError
from vigil_camsim.launcher import CamsimError, CamsimProcess, free_ports

PROFILES = ["h264", "h265", "h264-bframes-pcma", "h265-aac", "h264-pcmu", "h265-bframes"]
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Probe:
    """What a client saw on one RTSP URL."""

    codec: str = ""
    profile: str = ""
    has_b_frames: int = 0
    width: int = 0
    height: int = 0
    audio: list[tuple[str, int, int]] = field(default_factory=list)  # codec, rate, channels
    video: list[tuple[float | None, float | None, bool]] = field(default_factory=list)
    audio_pts: list[float] = field(default_factory=list)
    frames: int = 0

    @property
    def keyframe_pts(self) -> list[float]:
        return [pts for pts, _dts, key in self.video if key and pts is not None]

    @property
    def timed(self) -> list[tuple[float, float]]:
        return [(p, d) for p, d, _k in self.video if p is not None and d is not None]


def probe(url: str, seconds: float, decode: bool = False) -> Probe:
    """Read every stream of `url` for `seconds` of wall time."""
    got = Probe()
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10.0, 5.0)) as container:
        video = container.streams.video[0]
        ctx = video.codec_context
        got.codec, got.profile = ctx.name, str(ctx.profile)
        got.width, got.height = ctx.width, ctx.height
        for a in container.streams.audio:
            got.audio.append((a.codec_context.name, a.rate, a.codec_context.layout.nb_channels))
        started = time.monotonic()
        for packet in container.demux():
            if packet.size == 0:
                continue
            tb = packet.time_base
            if packet.stream.type == "video":
                pts = None if packet.pts is None else float(packet.pts * tb)
                dts = None if packet.dts is None else float(packet.dts * tb)
                got.video.append((pts, dts, packet.is_keyframe))
                if decode:
                    got.frames += len(packet.decode())
            elif packet.pts is not None:
                got.audio_pts.append(float(packet.pts * tb))
            if time.monotonic() - started >= seconds:
                break
        got.has_b_frames = video.codec_context.has_b_frames
    return got


def ffmpeg_errors(url: str, seconds: float) -> str:
    """ffmpeg's warnings and errors while decoding `seconds` of `url` (all streams)."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "warning", "-rtsp_transport", "tcp", "-i", url]
        + ["-t", str(seconds), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.strip()


@pytest.fixture(scope="module")
def rig(camsim_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamsimProcess]:
    log = tmp_path_factory.mktemp("camsim") / "camsim.log"
    process = CamsimProcess.start(
        cameras=len(PROFILES), profiles=PROFILES, log_path=log, **TEST_DEFAULTS
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probes(rig: CamsimProcess) -> dict[str, Probe]:
    return {name: probe(rig.url(i), 2.6) for i, name in enumerate(PROFILES, start=1)}


@pytest.mark.parametrize(
    ("name", "codec", "profile"),
    [
        ("h264", "h264", "Constrained Baseline"),
        ("h265", "hevc", "Main"),
        ("h264-bframes-pcma", "h264", "High"),
        ("h265-aac", "hevc", "Main"),
        ("h264-pcmu", "h264", "Constrained Baseline"),
        ("h265-bframes", "hevc", "Main"),
    ],
)
def test_video_codec_profile_and_size(
    probes: dict[str, Probe], name: str, codec: str, profile: str
) -> None:
    got = probes[name]
    assert (got.codec, got.profile) == (codec, profile)
    assert (got.width, got.height) == (TEST_DEFAULTS["width"], TEST_DEFAULTS["height"])


@pytest.mark.parametrize(
    ("name", "audio"),
    [
        ("h264", []),
        ("h265", []),
        ("h264-bframes-pcma", [("pcm_alaw", 8000, 1)]),
        ("h265-aac", [("aac", 16000, 1)]),
        ("h264-pcmu", [("pcm_mulaw", 8000, 1)]),
        ("h265-bframes", []),
    ],
)
def test_audio_stream_per_profile(
    probes: dict[str, Probe], name: str, audio: list[tuple[str, int, int]]
) -> None:
    got = probes[name]
    assert got.audio == audio
    assert bool(got.audio_pts) is bool(audio)


@pytest.mark.parametrize("name", ["h264-bframes-pcma", "h265-bframes"])
def test_bframes_send_decode_order_with_pts_after_dts(probes: dict[str, Probe], name: str) -> None:
    got = probes[name]
    assert got.has_b_frames >= 1
    timed = got.timed
    assert len(timed) > 40
    assert any(pts != dts for pts, dts in timed)
    assert all(pts >= dts - 1e-6 for pts, dts in timed)
    pts = [p for p, _d in timed]
    assert pts != sorted(pts)  # decode order is not presentation order
    dts = [d for _p, d in timed]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    # Presentation times, sorted, are one frame apart: no frame lost or doubled. (Frames shown
    # after the last decode time read may still be on their way, so they are left out.)
    every_pts = [p for p, _d, _k in got.video if p is not None]
    shown = sorted(p for p in every_pts if p <= dts[-1])
    steps = {round(b - a, 3) for a, b in zip(shown, shown[1:], strict=False)}
    assert steps == {round(1 / TEST_DEFAULTS["fps"], 3)}


@pytest.mark.parametrize("name", ["h264", "h265", "h264-pcmu"])
def test_no_bframes_means_pts_equals_dts(probes: dict[str, Probe], name: str) -> None:
    got = probes[name]
    assert got.has_b_frames == 0
    assert got.timed and all(pts == dts for pts, dts in got.timed)


@pytest.mark.parametrize("name", PROFILES)
def test_keyframe_cadence_is_exact_in_every_profile(probes: dict[str, Probe], name: str) -> None:
    keys = probes[name].keyframe_pts
    assert len(keys) >= 2
    gaps = {round(b - a, 3) for a, b in zip(keys, keys[1:], strict=False)}
    assert gaps == {TEST_DEFAULTS["gop_seconds"]}


@pytest.mark.parametrize("name", ["h264-bframes-pcma", "h265-aac", "h264-pcmu"])
def test_audio_is_paced_like_the_video_on_the_same_clock(
    probes: dict[str, Probe], name: str
) -> None:
    got = probes[name]
    audio, video = got.audio_pts, sorted(p for p, _d in got.timed)
    assert audio == sorted(audio) and len(set(audio)) == len(audio)
    # Both start together and advance at the same rate (within one audio unit and a frame).
    assert abs(audio[0] - video[0]) < 0.1
    assert abs((audio[-1] - audio[0]) - (video[-1] - video[0])) < 0.15
    assert audio[-1] - audio[0] > 1.5


@pytest.mark.parametrize("name", ["h265", "h264-bframes-pcma", "h265-aac", "h265-bframes"])
def test_streams_decode_without_errors(rig: CamsimProcess, name: str) -> None:
    assert ffmpeg_errors(rig.url(PROFILES.index(name) + 1), 3.0) == ""


def test_control_api_reports_each_cameras_profile(rig: CamsimProcess) -> None:
    infos = {c.id: c for c in rig.client.cameras()}
    assert [infos[str(i)].profile for i in range(1, len(PROFILES) + 1)] == PROFILES
    third = infos["3"]
    assert (third.codec, third.bframes, third.audio) == ("h264", 2, "pcma")
    assert infos["2"].audio is None and infos["2"].codec == "h265"


def test_fixture_profile_applies_to_every_camera_and_to_added_ones(
    camsim: Callable[..., CamsimProcess],
) -> None:
    cams = camsim(cameras=1, profile="h265-pcma")
    added = cams.client.add_camera()
    assert (added.profile, added.codec, added.audio) == ("h265-pcma", "h265", "pcma")
    got = probe(cams.url(added.id), 1.5, decode=True)
    assert got.codec == "hevc" and got.audio == [("pcm_alaw", 8000, 1)] and got.frames > 10
    assert cams.client.camera(added.id).audio_units_sent > 0


def test_long_gop_d1_camera(camsim: Callable[..., CamsimProcess]) -> None:
    """A 10 s-GOP D1 camera (the issue's example): keyframes exactly 10 s apart."""
    cams = camsim(cameras=1, preset="d1", fps=10, gop_seconds=10.0, loop_seconds=20.0)
    info = cams.client.camera(1)
    assert (info.width, info.height, info.gop_frames, info.loop_frames) == (704, 576, 100, 200)
    got = probe(cams.url(1), 11.0)
    assert (got.width, got.height) == (704, 576)
    # The first keyframe comes before the first RTCP report, so it has no time: count frames.
    keys = [i for i, (_p, _d, key) in enumerate(got.video) if key]
    assert keys[:2] == [0, 100]
    assert got.video[100][0] is not None and got.video[99][0] is not None
    assert round(got.video[100][0] - got.video[99][0], 3) == 0.1


@pytest.mark.parametrize(
    ("preset", "profile", "size"),
    [("720p", "h264", (1280, 720)), ("1080p", "h265", (1920, 1080)), ("4mp", "h265", (2560, 1440))],
)
def test_resolution_presets(
    camsim: Callable[..., CamsimProcess], preset: str, profile: str, size: tuple[int, int]
) -> None:
    cams = camsim(cameras=1, preset=preset, profile=profile, fps=5, bitrate_kbps=1000)
    got = probe(cams.url(1), 1.0, decode=True)
    assert (got.width, got.height) == size and got.frames >= 1


# --- bad input: clear error, non-zero exit, nothing started -----------------------------------


def test_launcher_refuses_bad_profiles_before_starting(camsim_ready: None) -> None:
    started = time.monotonic()
    for kwargs in (
        {"profile": "h266"},
        {"cameras": 2, "profiles": {3: "h265"}},
        {"profiles": ["h264-opus"]},
        {"preset": "8k"},
    ):
        with pytest.raises(CamsimError):
            CamsimProcess.start(**kwargs)
    assert time.monotonic() - started < 2.0  # refused without spawning a server


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["-m", "vigil_camsim", "serve", "--profile", "hevc"], 2, "unknown camera profile"),
        (
            ["-m", "vigil_camsim", "serve", "--camera-profile", "1-h265"],
            2,
            "expected CAMERA_ID=PROFILE",
        ),
        (["-m", "vigil_camsim", "serve", "--preset", "8k"], 2, "invalid choice"),
    ],
)
def test_cli_refuses_bad_profiles_and_listens_on_nothing(
    camsim_ready: None, argv: list[str], code: int, message: str
) -> None:
    port, control = free_ports("127.0.0.1", 2)
    result = subprocess.run(
        [sys.executable, *argv, f"--port={port}", f"--control-port={control}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code and message in result.stderr
    assert not port_open(port) and not port_open(control)


def test_server_refuses_a_profile_for_a_missing_camera(camsim_ready: None) -> None:
    port, control = free_ports("127.0.0.1", 2)
    script = Path("vigil_camsim/gst_server.py").resolve()
    result = subprocess.run(
        ["/usr/bin/python3", str(script), "--cameras=1", "--camera-profile=2=h265"]
        + [f"--port={port}", f"--control-port={control}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 4 and "unknown camera(s) 2" in result.stderr
    assert not port_open(port) and not port_open(control)


# --- NVR folder ---------------------------------------------------------------------------------


def nvr_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil_camsim", "nvr-folder", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_nvr_backfill_names_files_in_beijing_time_and_they_decode(tmp_path: Path) -> None:
    result = nvr_cli(
        "--dir", str(tmp_path), "--start", "2026-12-03T23:59:58", "--count", "2",
        "--clip-seconds", "2", "--profile", "h265-aac", "--format", "ts", "--layout", "dated",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        "2026-12-03/ch01_20261203_235958_20261204_000000.ts",
        "2026-12-04/ch01_20261204_000000_20261204_000002.ts",
    ]
    for rel in files:
        path = tmp_path / rel
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.name == "hevc"
            audio = c.streams.audio[0]
            assert (audio.codec_context.name, audio.rate) == ("aac", 16000)
            assert len(list(c.decode(video=0))) == 50
        check = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "warning", "-i", str(path), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0 and check.stderr.strip() == ""


@pytest.mark.parametrize(("tz", "style"), [("Asia/Shanghai", "compact"), ("UTC", "hik")])
def test_nvr_live_file_is_named_for_the_span_just_recorded(
    tmp_path: Path, tz: str, style: str
) -> None:
    result = nvr_cli(
        "--dir", str(tmp_path), "--tz", tz, "--style", style, "--count", "2",
        "--clip-seconds", "1", "--profile", "h264-bframes",
    )  # fmt: skip
    done = datetime.now(ZoneInfo(tz)).replace(tzinfo=None)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and not any(n.startswith(".") for n in names)
    stamps = [datetime.strptime(n.split("_")[-2 if style == "hik" else 0][:14], "%Y%m%d%H%M%S")
              for n in names]  # fmt: skip
    assert stamps[1] - stamps[0] == timedelta(seconds=1)
    # The second file's span [start, start + 1 s) ended just before the command returned.
    assert timedelta(0) <= done - (stamps[1] + timedelta(seconds=1)) < timedelta(seconds=3)
    with av.open(str(tmp_path / names[0])) as c:
        assert c.streams.video[0].codec_context.has_b_frames >= 1


# --- run-time faults for the installed base's bad input -------------------------------------------


def test_codec_switch_ends_sessions_and_reconnects_get_the_new_codec(
    camsim: Callable[..., CamsimProcess],
) -> None:
    cams = camsim(cameras=1)
    before = probe(cams.url(1), 1.0)
    assert (before.codec, before.audio) == ("h264", [])
    with pytest.raises(CamsimApiError) as info:
        cams.client.set_profile(1, "h266")
    assert info.value.status == 400 and "unknown camera profile" in info.value.message
    assert cams.client.camera(1).profile == "h264"  # a bad request changed nothing

    ended: list[str] = []

    def watch() -> None:  # a client connected while the camera is re-configured
        try:
            with av.open(cams.url(1), options={"rtsp_transport": "tcp"}, timeout=(10, 3)) as c:
                for _packet in c.demux(video=0):
                    pass
            ended.append("eof")
        except av.error.FFmpegError as exc:
            ended.append(type(exc).__name__)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1.5)
    info_after = cams.client.set_profile(1, "h265-pcmu")
    assert (info_after.codec, info_after.audio, info_after.profile) == ("h265", "pcmu", "h265-pcmu")
    watcher.join(timeout=15)
    assert not watcher.is_alive() and ended  # the old session ended
    after = probe(cams.url(1), 1.5, decode=True)
    assert after.codec == "hevc" and after.audio == [("pcm_mulaw", 8000, 1)] and after.frames > 10


def test_corrupt_nal_fault_breaks_decoding_briefly_and_the_stream_goes_on(
    camsim: Callable[..., CamsimProcess],
) -> None:
    cams = camsim(cameras=1, profile="h265")
    assert ffmpeg_errors(cams.url(1), 1.5) == ""
    timer = threading.Timer(1.5, lambda: cams.client.corrupt(1, frames=10))
    timer.start()
    try:
        errors = ffmpeg_errors(cams.url(1), 4.0)
    finally:
        timer.join()
    assert errors  # the decoder saw the damaged pictures
    assert cams.client.camera(1).corrupt_pending == 0
    assert ffmpeg_errors(cams.url(1), 1.5) == ""  # and the camera is well again


def test_audio_only_camera_sends_sound_and_no_video(camsim: Callable[..., CamsimProcess]) -> None:
    cams = camsim(cameras=2, profile="audio-only-pcma", profiles={2: "audio-only-aac"})
    for camera_id, expected in (("1", ("pcm_alaw", 8000, 1)), ("2", ("aac", 16000, 1))):
        with av.open(cams.url(camera_id), options={"rtsp_transport": "tcp"}, timeout=10) as c:
            assert len(c.streams.video) == 0
            audio = c.streams.audio[0]
            assert (audio.codec_context.name, audio.rate, audio.codec_context.channels) == expected
            pts = []
            for packet in c.demux(audio):
                if packet.pts is not None:
                    pts.append(float(packet.pts * packet.time_base))
                if len(pts) >= 20:
                    break
        assert pts == sorted(pts) and pts[-1] > pts[0]
        info = cams.client.camera(camera_id)
        assert info.codec == "none" and info.audio_units_sent > 0


def test_mjpeg_camera_and_its_switch_back_to_h264(camsim: Callable[..., CamsimProcess]) -> None:
    cams = camsim(cameras=1, profile="mjpeg")
    got = probe(cams.url(1), 1.0, decode=True)
    assert got.codec == "mjpeg" and got.frames > 10
    assert all(key for _p, _d, key in got.video)
    info = cams.client.set_profile(1, "h264")
    assert (info.codec, info.gop_frames) == ("h264", TEST_DEFAULTS["fps"])
    assert probe(cams.url(1), 1.0).codec == "h264"
