"""Camera profiles of the emulator: names, presets, per-camera assignments, the B-frame
timestamp schedule, audio pacing and NVR-folder names (pure; no processes, no GStreamer)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vigil_camsim import control_api, core, nvr_folder, profiles
from vigil_camsim.__main__ import main
from vigil_camsim.launcher import CamsimError, CamsimOptions, camera_profile_args
from vigil_camsim.nvr_folder import NvrConfig
from vigil_camsim.profiles import ProfileError

SHANGHAI = nvr_folder.zone("Asia/Shanghai")


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "codec", "bframes", "audio"),
    [
        ("h264", "h264", 0, None),
        ("h264-bframes", "h264", 2, None),
        ("h265", "h265", 0, None),
        ("h265-bframes", "h265", 2, None),
        ("h264-aac", "h264", 0, "aac"),
        ("h264-bframes-pcma", "h264", 2, "pcma"),
        ("h265-pcmu", "h265", 0, "pcmu"),
    ],
)
def test_profile_names_say_codec_bframes_and_audio(
    name: str, codec: str, bframes: int, audio: str | None
) -> None:
    prof = profiles.parse_profile(name)
    assert (prof.name, prof.codec, prof.bframes, prof.audio) == (name, codec, bframes, audio)


def test_every_listed_name_parses_and_there_are_twenty_three() -> None:
    names = profiles.profile_names()
    assert len(names) == len(set(names)) == 23
    assert [profiles.parse_profile(n).name for n in names] == names
    assert profiles.DEFAULT_PROFILE == "h264"


@pytest.mark.parametrize("bad", ["", "h266", "H264", "h264-", "h264-opus", "pcma", "h264-pcma-aac"])
def test_unknown_profile_is_refused_with_the_valid_names(bad: str) -> None:
    with pytest.raises(ProfileError) as info:
        profiles.parse_profile(bad)
    message = str(info.value)
    assert "unknown camera profile" in message and "h264-bframes" in message and "pcma" in message


def test_audio_formats_are_what_chinese_cameras_send() -> None:
    pcma, pcmu, aac = profiles.AUDIO["pcma"], profiles.AUDIO["pcmu"], profiles.AUDIO["aac"]
    assert (pcma.rate, pcma.channels, pcma.samples) == (8000, 1, 160)  # 20 ms of G.711
    assert (pcmu.rate, pcmu.channels) == (8000, 1)
    assert (aac.rate, aac.channels, aac.samples) == (16000, 1, 1024)
    assert pcma.chunk_ns == 20_000_000 and aac.chunk_ns == 64_000_000


@pytest.mark.parametrize(
    ("name", "size"),
    [("d1", (704, 576)), ("720p", (1280, 720)), ("1080p", (1920, 1080)), ("4MP", (2560, 1440))],
)
def test_presets(name: str, size: tuple[int, int]) -> None:
    assert profiles.preset_size(name) == size


def test_unknown_preset_names_the_valid_ones() -> None:
    with pytest.raises(ProfileError, match="d1, 720p, 1080p, 4mp"):
        profiles.preset_size("8k")


# --- per-camera assignments -----------------------------------------------------------------------


def test_assignments_repeated_or_comma_separated() -> None:
    chosen = profiles.parse_assignments(["2=h265", "3=h264-pcma,4=h264-bframes-aac"])
    assert {k: v.name for k, v in chosen.items()} == {
        "2": "h265",
        "3": "h264-pcma",
        "4": "h264-bframes-aac",
    }


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["2:h265"], "expected CAMERA_ID=PROFILE"),
        (["=h265"], "expected CAMERA_ID=PROFILE"),
        (["2="], "expected CAMERA_ID=PROFILE"),
        (["2=h265=x"], "expected CAMERA_ID=PROFILE"),
        (["2=h266"], "unknown camera profile"),
        (["2=h265", "2=h264"], "twice"),
    ],
)
def test_bad_assignments_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        profiles.parse_assignments(items)


def test_each_camera_gets_its_assignment_or_the_default() -> None:
    chosen = profiles.profiles_for(["1", "2", "3"], "h265-pcma", ["2=h264"])
    assert [chosen[c].name for c in ("1", "2", "3")] == ["h265-pcma", "h264", "h265-pcma"]


def test_an_assignment_for_a_missing_camera_is_an_error() -> None:
    with pytest.raises(ProfileError, match="unknown camera"):
        profiles.profiles_for(["1", "2"], "h264", ["5=h265"])


def test_media_launch_per_codec_and_audio() -> None:
    plain = profiles.media_launch("h264", None)
    assert "h264parse ! rtph264pay name=pay0" in plain and "pay1" not in plain
    hevc = profiles.media_launch("h265", profiles.AUDIO["pcma"])
    assert "video/x-h265" in hevc and "h265parse ! rtph265pay name=pay0" in hevc
    assert "appsrc name=asrc" in hevc and "rtppcmapay name=pay1" in hevc
    assert "rtpmp4gpay name=pay1" in profiles.media_launch("h264", profiles.AUDIO["aac"])
    assert hevc.startswith("( ") and hevc.endswith(" )")


# --- B-frames: PTS/DTS schedule -------------------------------------------------------------------

# Presentation index of each access unit in decode order, as x264 (bframes=2, no pyramid, GOP 7)
# produced them: I0 P3 B1 B2 P6 B4 B5 | I7 ...
X264_GOP7 = [0, 3, 1, 2, 6, 4, 5, 7, 10, 8, 9, 13, 11, 12]


def test_without_bframes_every_offset_is_zero() -> None:
    assert profiles.composition_offsets(list(range(10))) == [0] * 10


def test_bframe_offsets_keep_pts_at_or_after_dts_and_present_every_frame_once() -> None:
    offsets = profiles.composition_offsets(X264_GOP7)
    assert min(offsets) == 0 and offsets[0] == 1  # reorder delay of one frame
    dts = list(range(len(X264_GOP7)))
    pts = [d + o for d, o in zip(dts, offsets, strict=True)]
    assert all(p >= d for p, d in zip(pts, dts, strict=True))
    assert sorted(pts) == list(range(1, len(X264_GOP7) + 1))  # one frame per period, no gaps
    assert pts != sorted(pts)  # decode order differs from presentation order


def test_looping_the_schedule_continues_the_timeline() -> None:
    """The pacer sends slot n = loop_index * len + k with DTS n and PTS n + offset[k]: over
    three loop repetitions presentation times are exactly 1..3*len, each once."""
    offsets = profiles.composition_offsets(X264_GOP7)
    n = len(X264_GOP7)
    pts = [slot + offsets[slot % n] for slot in range(3 * n)]
    assert sorted(pts) == list(range(1, 3 * n + 1))
    keyframe_pts = [slot + offsets[slot % n] for slot in range(3 * n) if slot % 7 == 0]
    assert [b - a for a, b in zip(keyframe_pts, keyframe_pts[1:], strict=False)] == [7] * 5


def test_offsets_refuse_a_loop_that_is_not_a_permutation() -> None:
    with pytest.raises(ValueError, match="permutation"):
        profiles.composition_offsets([0, 2, 2, 3])


def test_pts_frames_from_encoder_nanoseconds() -> None:
    base = 3_600_000_000_000  # x264enc starts at 1000 h
    ns = [
        base + p * 40_000_000 + wobble for p, wobble in zip(X264_GOP7, [0, 1, -1] * 5, strict=False)
    ]
    assert profiles.pts_frames_from_ns(ns, 25) == X264_GOP7
    assert profiles.pts_frames_from_ns([], 25) == []


# --- audio pacing ------------------------------------------------------------------------------


def test_audio_units_ride_on_the_video_ticks() -> None:
    clock = core.AudioClock(origin=100.0, rate=8000, samples=160)  # 20 ms units
    video = core.Schedule(origin=100.0, fps=25)
    counts = []
    for frame in range(25):
        count, clock = core.plan_audio(clock, video.due_at(frame))
        counts.append(count)
    assert counts[0] == 1 and sum(counts) == clock.sent == 49  # units 0..48 due by 0.96 s
    assert counts[1:] == [2] * 24
    assert clock.due_at(48) == pytest.approx(100.96)


def test_aac_units_are_paced_at_64_ms() -> None:
    clock = core.AudioClock(origin=0.0, rate=16000, samples=1024)
    count, clock = core.plan_audio(clock, 1.0)
    assert count == 16  # units at 0, 0.064, ..., 0.960
    count, clock = core.plan_audio(clock, 1.0)
    assert count == 0
    count, clock = core.plan_audio(clock, 1.024)
    assert count == 1


def test_audio_re_bases_after_a_long_stop_instead_of_flooding() -> None:
    clock = core.AudioClock(origin=0.0, rate=8000, samples=160, sent=50)
    count, after = core.plan_audio(clock, 60.0)
    assert count == 1 and after.sent == 51
    assert after.due_at(50) == pytest.approx(60.0)
    count, after = core.plan_audio(after, 60.04)
    assert count == 2


def test_audio_loop_lasts_whole_seconds_and_whole_units() -> None:
    assert profiles.audio_loop_seconds(8000, 160) == 1
    assert profiles.audio_loop_seconds(16000, 1024) == 8
    for rate, samples in ((8000, 160), (16000, 1024)):
        seconds = profiles.audio_loop_seconds(rate, samples)
        assert seconds * rate % samples == 0


def test_beep_marks_each_whole_second() -> None:
    pcm = profiles.beep_pcm(8000, 2)
    assert len(pcm) == 2 * 8000 * 2
    samples = [int.from_bytes(pcm[i : i + 2], "little", signed=True) for i in range(0, len(pcm), 2)]

    def loudness(start: int) -> int:
        return max(abs(v) for v in samples[start : start + 400])

    assert loudness(0) > 10_000 and loudness(8000) > 10_000  # beeps at 0 s and 1 s
    assert 0 < loudness(4000) < 1000  # a quiet hum between, never digital silence


# --- specs and the launcher -------------------------------------------------------------------


def test_spec_defaults_are_unchanged_h264_without_audio() -> None:
    spec = core.CameraSpec(camera_id="1", label="CAM 1")
    assert (spec.codec, spec.bframes, spec.audio, spec.profile) == ("h264", 0, None, "h264")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"codec": "vp8"}, "codec"), ({"bframes": 9}, "bframes"), ({"audio": "opus"}, "audio")],
)
def test_spec_refuses_unknown_codecs(changes: dict[str, object], message: str) -> None:
    spec = dataclasses.replace(core.CameraSpec(camera_id="1", label="CAM 1"), **changes)  # type: ignore[arg-type]
    with pytest.raises(core.SpecError, match=message):
        spec.validated()


def test_cache_key_follows_codec_and_bframes_not_audio() -> None:
    base = core.CameraSpec(camera_id="1", label="CAM 1")
    keys = {
        core.cache_key(base),
        core.cache_key(dataclasses.replace(base, codec="h265")),
        core.cache_key(dataclasses.replace(base, bframes=2)),
    }
    assert len(keys) == 3
    assert core.cache_key(dataclasses.replace(base, audio="pcma")) == core.cache_key(base)
    assert core.LOOP_FORMAT_VERSION >= 3


def test_options_pass_profiles_and_preset_to_the_server() -> None:
    options = CamsimOptions(
        cameras=3, preset="d1", profile="h265", camera_profiles=("3=h264-bframes-pcma",)
    )
    argv = options.checked().argv("/usr/bin/python3", 1, 2)
    for arg in ("--preset=d1", "--profile=h265", "--camera-profile=3=h264-bframes-pcma"):
        assert arg in argv
    plain = CamsimOptions().argv("/usr/bin/python3", 1, 2)
    assert not any(a.startswith(("--profile", "--preset", "--camera-profile")) for a in plain)


def test_per_camera_profiles_as_mapping_or_list() -> None:
    assert camera_profile_args({2: "h265", "3": "h264-aac"}) == ("2=h265", "3=h264-aac")
    assert camera_profile_args(["h264", None, "h265"]) == ("1=h264", "3=h265")
    assert camera_profile_args(None) == ()
    with pytest.raises(CamsimError, match="mapping or a list"):
        camera_profile_args("h265")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CamsimOptions(profile="h266"), "unknown camera profile"),
        (CamsimOptions(cameras=2, camera_profiles=("2:h265",)), "CAMERA_ID=PROFILE"),
        (CamsimOptions(cameras=2, camera_profiles=("3=h265",)), "unknown camera"),
        (CamsimOptions(preset="8k"), "unknown preset"),
    ],
)
def test_options_refuse_bad_profiles(options: CamsimOptions, message: str) -> None:
    with pytest.raises(CamsimError, match=message):
        options.checked()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "h266"], "unknown camera profile"),
        (["--cameras", "2", "--camera-profile", "2:h265"], "CAMERA_ID=PROFILE"),
        (["--camera-profile", "7=h265"], "unknown camera"),
    ],
)
def test_cli_serve_refuses_bad_profiles_before_starting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Were the check missing, main() would exec the server in place of this test process.
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("vigil-camsim serve:")


def test_cli_serve_refuses_an_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--preset", "8k"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# --- NVR folder names --------------------------------------------------------------------------

START_UTC_US = int(datetime(2026, 12, 3, 6, 30, tzinfo=UTC).timestamp()) * 1_000_000


def test_local_start_is_read_in_the_recorders_zone() -> None:
    assert nvr_folder.parse_local("2026-12-03T14:30:00", SHANGHAI) == START_UTC_US
    assert nvr_folder.parse_local("2026-12-03T06:30:00", nvr_folder.zone("UTC")) == START_UTC_US


@pytest.mark.parametrize(
    ("style", "name"),
    [
        ("range", "ch02_20261203_143000_20261203_143500.mp4"),
        ("hik", "ch02_20261203143000_20261203143500.mp4"),
        ("compact", "20261203143000.mp4"),
    ],
)
def test_nvr_names_show_beijing_wall_clock(style: nvr_folder.NameStyle, name: str) -> None:
    start, end = nvr_folder.span(START_UTC_US, 300, SHANGHAI)
    assert nvr_folder.nvr_name(style, 2, start, end, "mp4") == name


def test_nvr_names_in_utc_are_eight_hours_earlier() -> None:
    start, end = nvr_folder.span(START_UTC_US, 60, nvr_folder.zone("UTC"))
    assert nvr_folder.nvr_name("compact", 1, start, end, "ts") == "20261203063000.ts"


def test_names_cross_midnight_and_the_dated_layout_uses_the_local_date() -> None:
    # 16:00 UTC is midnight in Beijing: the date folder is the local one.
    us = int(datetime(2026, 12, 3, 15, 59, 30, tzinfo=UTC).timestamp()) * 1_000_000
    start, end = nvr_folder.span(us, 60, SHANGHAI)
    name = nvr_folder.nvr_name("range", 1, start, end, "ts")
    assert name == "ch01_20261203_235930_20261204_000030.ts"
    assert nvr_folder.relative_path("dated", name, start) == f"2026-12-03/{name}"
    assert nvr_folder.relative_path("flat", name, start) == name


def test_nvr_names_sort_by_time() -> None:
    names = []
    for k in range(3):
        start, end = nvr_folder.span(START_UTC_US + k * 600_000_000, 600, SHANGHAI)
        names.append(nvr_folder.nvr_name("hik", 1, start, end, "mp4"))
    assert sorted(reversed(names)) == names
    assert all(re.fullmatch(r"ch01_\d{14}_\d{14}\.mp4", n) for n in names)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tz": "Mars/Olympus"}, "time zone"),
        ({"profile": "h264-pcma"}, "AAC audio only"),
        ({"profile": "vp9"}, "unknown camera profile"),
        ({"profile": "mjpeg"}, "H.264 or H.265"),
        ({"profile": "audio-only-aac"}, "H.264 or H.265"),
        ({"style": "dahua"}, "name style"),
        ({"layout": "deep"}, "layout"),
        ({"clip_seconds": 0}, "clip seconds"),
        ({"channel": 0}, "channel"),
        ({"width": 641}, "even"),
        ({"fmt": "avi"}, "format"),
    ],
)
def test_bad_nvr_config_is_refused(changes: dict[str, object], message: str) -> None:
    config = dataclasses.replace(NvrConfig(folder=Path("/nonexistent")), **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        config.validated()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tz", "Nowhere/City"], "time zone"),
        (["--start", "yesterday", "--count", "1"], "2026-12-03T14:30:00"),
        (["--start", "2026-12-03T14:30:00+08:00", "--count", "1"], "without a zone"),
        (["--start", "2026-12-03T14:30:00"], "needs --count"),
        (["--profile", "h265-pcmu"], "AAC audio only"),
    ],
)
def test_cli_nvr_folder_refuses_bad_input_and_writes_nothing(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nvr-folder", "--dir", str(tmp_path / "nvr"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "nvr").exists()


# --- run-time profile change and the corrupt-NAL fault ------------------------------------------


def test_control_api_parses_profile_corrupt_and_add_with_profile() -> None:
    parse = control_api.parse_request
    assert parse("POST", "/cameras/2/profile", b'{"profile": "h265-pcma"}') == (
        control_api.SetProfile("2", "h265-pcma")
    )
    assert parse("POST", "/cameras/2/corrupt", b"") == control_api.Corrupt("2", 1)
    assert parse("POST", "/cameras/2/corrupt", b'{"frames": 5}') == control_api.Corrupt("2", 5)
    added = parse("POST", "/cameras", b'{"profile": "h264-aac"}')
    assert isinstance(added, control_api.AddCamera) and added.profile == "h264-aac"
    plain = parse("POST", "/cameras", b"{}")
    assert isinstance(plain, control_api.AddCamera) and plain.profile is None


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/cameras/2/profile", b"", "JSON body required"),
        ("/cameras/2/profile", b'{"profile": 5}', "profile name"),
        ("/cameras/2/profile", b'{"profile": "H265; rm"}', "profile name"),
        ("/cameras/2/profile", b'{"profile": "h265", "x": 1}', "unknown field"),
        ("/cameras/2/corrupt", b'{"frames": 0}', "1..250"),
        ("/cameras/2/corrupt", b'{"frames": true}', "integer"),
        ("/cameras", b'{"profile": ""}', "profile name"),
    ],
)
def test_control_api_refuses_bad_profile_and_corrupt_requests(
    path: str, body: bytes, message: str
) -> None:
    error = control_api.parse_request("POST", path, body)
    assert isinstance(error, control_api.ApiError) and error.status == 400
    assert message in error.message


AU = (
    b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac"  # SPS
    + b"\x00\x00\x00\x01\x68\xee\x3c\x80"  # PPS
    + b"\x00\x00\x01\x65"
    + bytes(range(1, 200))  # IDR slice
)


def test_nal_spans_find_each_unit_after_its_start_code() -> None:
    spans = core.nal_spans(AU)
    assert [AU[a] for a, _b in spans] == [0x67, 0x68, 0x65]
    assert AU[spans[0][0] : spans[0][1]] == b"\x67\x64\x00\x1f\xac"
    assert spans[2][1] == len(AU)
    assert core.nal_spans(b"no start code") == []


def test_corrupt_access_unit_damages_only_the_slice_data() -> None:
    bad = core.corrupt_access_unit(AU)
    assert len(bad) == len(AU) and bad != AU
    sps_pps_and_slice_head = len(AU) - 199 + 1  # through the slice's 2-byte NAL header
    assert bad[:sps_pps_and_slice_head] == AU[:sps_pps_and_slice_head]
    assert [bad[a] for a, _b in core.nal_spans(bad)] == [0x67, 0x68, 0x65]
    assert b"\x00\x00" not in bad[sps_pps_and_slice_head:]  # no start code emulated
    assert core.corrupt_access_unit(b"junk") == b"junk"


def test_audio_only_profiles_have_no_video_and_need_audio() -> None:
    prof = profiles.parse_profile("audio-only-pcma")
    assert (prof.codec, prof.audio) == ("none", "pcma")
    assert "audio-only-aac" in profiles.profile_names()
    with pytest.raises(ProfileError, match="audio-only-<audio>"):
        profiles.parse_profile("audio-only")
    launch = profiles.media_launch("none", profiles.AUDIO["pcmu"])
    assert "rtppcmupay name=pay0" in launch and "name=src " not in launch
    with pytest.raises(ValueError, match="needs audio"):
        profiles.media_launch("none", None)
    spec = dataclasses.replace(core.CameraSpec(camera_id="1", label="CAM 1"), codec="none")
    with pytest.raises(core.SpecError, match="needs audio"):
        spec.validated()


def test_mjpeg_profile_has_only_keyframes_and_switching_back_restores_the_gop() -> None:
    base = core.CameraSpec(camera_id="1", label="CAM 1", gop_frames=25, loop_frames=50)
    prof = profiles.parse_profile("mjpeg-pcma")
    mjpeg = core.with_profile(base, prof.name, prof.codec, prof.bframes, prof.audio)
    assert (mjpeg.codec, mjpeg.gop_frames, mjpeg.audio) == ("mjpeg", 1, "pcma")
    back = core.with_profile(mjpeg, "h264-bframes", "h264", 2, None)
    assert (back.codec, back.gop_frames, back.bframes) == ("h264", 25, 2)
    launch = profiles.media_launch("mjpeg", None)
    assert "caps=image/jpeg" in launch and "rtpjpegpay name=pay0" in launch
    with pytest.raises(core.SpecError, match="2040"):
        core.with_profile(
            dataclasses.replace(base, width=2560, height=1440), "mjpeg", "mjpeg", 0, None
        )
    with pytest.raises(core.SpecError, match="GOP 1"):
        dataclasses.replace(base, codec="mjpeg").validated()


def test_nvr_folder_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["nvr-folder", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--tz", "--style", "--layout", "--start", "--count", "--profile"):
        assert flag in out
    assert "Asia/Shanghai" in out
