"""Cameras like Longnan's installed base, through NVR folders, with real media made by PyAV:
H.265, B-frames, AAC and G.711 audio, long GOPs, local-time names, and bad input.

Every segment is checked with the real ffmpeg/ffprobe binaries: it decodes on its own with no
message, its frame count matches its duration; consecutive segments concatenated (concat
demuxer) or read as an HLS playlist give no warning at all.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.audio.frame import AudioFrame
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from edge_agent.capture import CaptureManager, CaptureSettings, SegmentWriter
from edge_agent.clock import SystemClock
from edge_agent.config import CameraConfig
from edge_agent.model import AgentEvent, SegmentFlag, SegmentInfo
from edge_agent.segmenter import CutPolicy
from edge_agent.sources.nal import START, annexb_nals, nal_type
from edge_agent.store import SegmentBuffer
from tests.support import wait_until

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000
FPS = 25


# --- media -----------------------------------------------------------------------------------


def write_media(
    path: Path,
    *,
    video: str = "libx264",
    audio: str | None = None,
    seconds: float = 10.0,
    gop: int = FPS,
    bframes: int = 2,
    fmt: str | None = None,
    headers_once: bool = False,
    audio_seconds: float | None = None,
) -> Path:
    """A recording like a camera's: 320x180 25 fps, keyframe every `gop` frames, B-frames,
    optional audio (a 440 Hz tone; "aac" at 16 kHz, "pcm_alaw"/"pcm_mulaw" at 8 kHz).
    `headers_once`: parameter sets with the first keyframe only, as many cameras send them
    (the rest only in the stream's description), so a later segment cannot decode without
    the agent putting them back."""
    out = av.open(str(path), "w", format=fmt)
    v = out.add_stream(video, rate=FPS)
    v.width, v.height, v.pix_fmt = 320, 180, "yuv420p"
    if video == "libx264":
        v.options = {
            "preset": "ultrafast",
            "bf": str(bframes),
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
        }
    else:
        params = f"keyint={gop}:min-keyint={gop}:bframes={bframes}:scenecut=0:log-level=error"
        v.options = {"preset": "ultrafast", "x265-params": params}
    a = None
    if audio is not None:
        a = out.add_stream(audio, rate=16000 if audio == "aac" else 8000, layout="mono")
    sent = 0
    for i in range(int(seconds * FPS)):
        frame = VideoFrame(320, 180, "yuv420p")
        for k, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 7 + k * 60) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        for packet in v.encode(frame):
            out.mux(_without_headers(packet, video) if headers_once and i >= gop else packet)
        if a is not None and audio_seconds is not None and i == int(audio_seconds * FPS):
            for packet in a.encode(None):  # the microphone stops here
                out.mux(packet)
            a = None
        if a is not None:
            n = a.rate // FPS
            tone = AudioFrame(format="s16", layout="mono", samples=n)
            tone.planes[0].update(
                b"".join(
                    struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (sent + j) / a.rate)))
                    for j in range(n)
                )
            )
            tone.rate, tone.pts, tone.time_base = a.rate, sent, Fraction(1, a.rate)
            sent += n
            for packet in a.encode(tone):
                out.mux(packet)
    for packet in v.encode(None):
        out.mux(_without_headers(packet, video) if headers_once else packet)
    if a is not None:
        for packet in a.encode(None):
            out.mux(packet)
    out.close()
    return path


def _without_headers(packet: Packet[VideoStream], encoder: str) -> Packet[VideoStream]:
    if not packet.is_keyframe:
        return packet
    codec = "h264" if encoder == "libx264" else "hevc"
    drop = {7, 8} if codec == "h264" else {32, 33, 34}
    nals = [n for n in annexb_nals(bytes(packet)) if nal_type(codec, n) not in drop]
    bare: Packet[VideoStream] = Packet(b"".join(START + n for n in nals))
    bare.pts, bare.dts, bare.duration = packet.pts, packet.dts, packet.duration
    bare.time_base, bare.is_keyframe, bare.stream = packet.time_base, True, packet.stream
    return bare


def ffmpeg_messages(*args: str) -> str:
    """What ffmpeg says at `-v warning` (errors and warnings): empty when all is well."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "warning", *args, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.stderr.strip() + ("" if done.returncode == 0 else f" (exit {done.returncode})")


def counted(path: Path) -> dict[str, int]:
    """Frames (video) or packets' frames (audio) per codec, counted by `ffprobe -count_frames`."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    out: dict[str, int] = {}
    for line in done.stdout.split():
        codec, _, frames = line.partition(",")
        out[codec] = int(frames) if frames.isdigit() else 0
    return out


def playlist(paths: list[Path], durations: list[float], at: Path) -> Path:
    target = math.ceil(max(durations))
    rows = [f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n"]
    rows += [f"#EXTINF:{d:.3f},\n{p}\n" for p, d in zip(paths, durations, strict=True)]
    at.write_text("".join(rows) + "#EXT-X-ENDLIST\n")
    return at


def concat_list(paths: list[Path], at: Path) -> Path:
    at.write_text("".join(f"file '{p}'\n" for p in paths))
    return at


# --- rig -------------------------------------------------------------------------------------


class Rig:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.buffer = SegmentBuffer.open(root / "buffer", 10**9, SystemClock())
        self.events: list[AgentEvent] = []
        self.manager: CaptureManager | None = None

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def run(self, *cameras: CameraConfig, names: dict[str, set[str]]) -> None:
        settings = CaptureSettings(state_dir=self.root / "state", folder_poll_s=0.05)
        self.manager = CaptureManager(
            cameras, self.buffer, SystemClock(), settings, self.events.append
        )
        self.manager.start()
        for cid, wanted in names.items():
            ledger = settings.state_dir / f"{cid}.json"
            wait_until(
                lambda ledger=ledger, wanted=wanted: (
                    ledger.exists() and all(f'"{n}"' in ledger.read_text() for n in wanted)
                ),
                60,
                f"{cid}: {wanted} handled",
            )
        self.manager.stop()
        self.manager = None

    def segments(self, camera_id: str) -> list[SegmentInfo]:
        return self.buffer.segments(camera_id)

    def paths(self, camera_id: str) -> list[Path]:
        return [self.buffer.path_of(s) for s in self.segments(camera_id)]

    def kinds(self, camera_id: str) -> list[str]:
        return [e.kind for e in self.events if e.camera_id == camera_id]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    if r.manager is not None:
        r.manager.stop()
    r.buffer.close()


def nvr(camera_id: str, path: Path, seconds: float = 2, zone: str = "UTC") -> CameraConfig:
    return CameraConfig(
        id=camera_id,
        kind="nvr_folder",
        path=str(path),
        segment_seconds=seconds,
        settle_seconds=0,
        timezone=zone,
    )


def assert_each_decodes_alone(rig: Rig, camera_id: str, codec: str, audio: bool) -> None:
    for seg in rig.segments(camera_id):
        path = rig.buffer.path_of(seg)
        assert ffmpeg_messages("-i", str(path)) == "", seg
        frames = counted(path)
        assert frames.get(codec) == round(seg.duration_us / (S // FPS)), (seg, frames)
        assert ("aac" in frames) is audio, (seg, frames)
        if audio:  # AAC frames of 1024 samples cover the segment (one either way at the cut)
            rate = 16000 if "16000" in probe_rate(path) else 8000
            expected = seg.duration_us / S * rate / 1024
            assert abs(frames["aac"] - expected) <= 2, (seg, frames, expected)
    assert rig.buffer.verify_chain(camera_id, check_files=True) == []


def probe_rate(path: Path) -> str:
    return subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=sample_rate"]
        + ["-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def assert_one_stream(rig: Rig, camera_id: str, tmp: Path) -> None:
    """Five consecutive segments concatenated, and all of them as an HLS playlist, read with
    no warning: timestamps monotonic across boundaries, continuity counters carried over."""
    segs = rig.segments(camera_id)
    paths = rig.paths(camera_id)
    assert len(paths) >= 5
    assert (
        ffmpeg_messages(
            "-f", "concat", "-safe", "0", "-i", str(concat_list(paths[:5], tmp / "l.txt"))
        )
        == ""
    )
    m3u8 = playlist(paths, [s.duration_us / S for s in segs], tmp / f"{camera_id}.m3u8")
    assert ffmpeg_messages("-allowed_extensions", "ALL", "-i", str(m3u8), "-c", "copy") == ""
    assert ffmpeg_messages("-allowed_extensions", "ALL", "-i", str(m3u8)) == ""


def assert_tiles(segs: list[SegmentInfo], start_us: int, end_us: int) -> None:
    assert segs[0].start_us == start_us
    assert all(b.start_us == a.end_us for a, b in zip(segs, segs[1:], strict=False)), segs
    assert segs[-1].end_us == end_us


# --- tests -----------------------------------------------------------------------------------


def test_h265_recordings_remux_into_segments_that_decode_on_their_own(
    rig: Rig, tmp_path: Path
) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.ts", video="libx265", seconds=10, headers_once=True)
    write_media(folder / "ch1_20260101T000010.mp4", video="libx265", seconds=4)
    rig.run(nvr("h5", folder), names={"h5": {p.name for p in folder.iterdir()}})
    segs = rig.segments("h5")
    assert [s.duration_us for s in segs] == [2 * S] * 7
    assert_tiles(segs, T0, T0 + 14 * S)
    assert rig.buffer.gaps("h5") == []
    # The .ts has VPS/SPS/PPS with its first keyframe only: each later segment decodes alone
    # because the agent put the stream's parameter sets in front of its first keyframe.
    for seg in segs:
        assert counted(rig.buffer.path_of(seg)) == {"hevc": 50}
        assert ffmpeg_messages("-i", str(rig.buffer.path_of(seg))) == ""
    assert rig.kinds("h5") == []
    assert_one_stream(rig, "h5", tmp_path)
    assert rig.buffer.verify_chain("h5", check_files=True) == []


@pytest.mark.parametrize(("video", "codec"), [("libx264", "h264"), ("libx265", "hevc")])
def test_b_frames_and_aac_stay_one_clean_stream_across_segments(
    rig: Rig, tmp_path: Path, video: str, codec: str
) -> None:
    folder = rig.folder("nvr")
    write_media(
        folder / "ch1_20260101T000000.ts", video=video, audio="aac", seconds=12, headers_once=True
    )
    rig.run(nvr("bf", folder), names={"bf": {"ch1_20260101T000000.ts"}})
    segs = rig.segments("bf")
    assert [s.duration_us for s in segs] == [2 * S] * 6
    assert_each_decodes_alone(rig, "bf", codec, audio=True)
    assert_one_stream(rig, "bf", tmp_path)


@pytest.mark.parametrize("law", ["pcm_alaw", "pcm_mulaw"])
def test_g711_audio_is_converted_to_aac_and_video_is_remuxed(
    rig: Rig, tmp_path: Path, law: str
) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.mov", video="libx265", audio=law, seconds=10)
    write_media(folder / "ch1_20260101T000010.mov", video="libx264", audio=law, seconds=10)
    rig.run(nvr("g7", folder), names={"g7": {p.name for p in folder.iterdir()}})
    segs = rig.segments("g7")
    assert len(segs) == 10
    assert_tiles(segs, T0, T0 + 20 * S)
    per_file = [0, 0]
    for n, seg in enumerate(segs):
        frames = counted(rig.buffer.path_of(seg))
        assert frames.keys() == ({"hevc", "aac"} if n < 5 else {"h264", "aac"}), frames
        # The converter lags the video by a frame or two, so a segment's sound ends a little
        # before its picture and the next one picks up there: each has most of its 2 s...
        assert frames["aac"] >= 12, frames
        per_file[n // 5] += frames["aac"]
        assert ffmpeg_messages("-i", str(rig.buffer.path_of(seg))) == ""
    # ...and a file's segments carry all of its sound (10 s of 8 kHz in 1024-sample frames).
    assert all(abs(total - 10 * 8000 / 1024) <= 2 for total in per_file), per_file
    assert rig.kinds("g7") == []  # same audio in both files: nothing to report


def test_g711_conversion_cost_per_camera(tmp_path: Path) -> None:
    """The only transcoding the agent does, measured: thread CPU per second of audio."""
    src = write_media(tmp_path / "a.mov", video="libx264", audio="pcm_alaw", seconds=20)
    with SegmentBuffer.open(tmp_path / "buffer", 10**9, SystemClock()) as buffer:
        writer = SegmentWriter("c1", buffer, CutPolicy.for_seconds(4))
        with av.open(str(src)) as c:
            writer.begin(c.streams.video[0], T0, live=False, audio=c.streams.audio[0])
            for packet in c.demux(list(c.streams)):
                if packet.size:
                    writer.feed(packet)
            cpu_s = writer.audio_cpu_s
            writer.end(truncated=False)
    pct = cpu_s / 20 * 100
    print(f"G.711 -> AAC: {pct:.3f} % of one core per camera")
    assert 0 < pct < 2.0


def test_a_long_gop_is_cut_at_keyframes_measured_and_reported_once(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.ts", gop=10 * FPS, seconds=30)
    write_media(folder / "ch1_20260101T000030.ts", gop=10 * FPS, seconds=20)
    rig.run(nvr("lg", folder, seconds=4), names={"lg": {p.name for p in folder.iterdir()}})
    segs = rig.segments("lg")
    assert [s.duration_us for s in segs] == [10 * S] * 5  # never mid-GOP
    assert_tiles(segs, T0, T0 + 50 * S)
    assert_each_decodes_alone(rig, "lg", "h264", audio=False)
    assert rig.kinds("lg") == ["long_gop"]
    detail = next(e.detail for e in rig.events if e.kind == "long_gop")
    assert "keyframe every 10.0 s" in detail and "4 s segment target" in detail


def test_writer_exposes_the_measured_gop(tmp_path: Path) -> None:
    src = write_media(tmp_path / "a.ts", gop=3 * FPS, seconds=9, bframes=0)
    events: list[tuple[str, str]] = []
    with SegmentBuffer.open(tmp_path / "buffer", 10**9, SystemClock()) as buffer:
        writer = SegmentWriter(
            "c1", buffer, CutPolicy.for_seconds(4), on_event=lambda k, d: events.append((k, d))
        )
        assert writer.gop_s is None
        with av.open(str(src)) as c:
            writer.begin(c.streams.video[0], T0, live=False)
            for packet in c.demux(c.streams.video[0]):
                if packet.size:
                    writer.feed(packet)
            writer.end(truncated=False)
    assert writer.gop_s == 3.0
    assert events == []  # 3 s is within a 4 s target: nothing to warn about


def test_nvr_names_are_read_in_the_folder_time_zone(rig: Rig) -> None:
    beijing = rig.folder("beijing")
    utc = rig.folder("utc")
    write_media(beijing / "ch1_20260101T080000.ts", seconds=4)  # 08:00 in Beijing = 00:00 UTC
    write_media(beijing / "ch1_20260101T000004Z.ts", seconds=2)  # says UTC itself
    write_media(utc / "ch1_20260101T080000.ts", seconds=4)
    default = CameraConfig(
        id="bj", kind="nvr_folder", path=str(beijing), segment_seconds=2, settle_seconds=0
    )
    assert default.timezone == "Asia/Shanghai"
    rig.run(
        default,
        nvr("utc", utc, zone="UTC"),
        names={"bj": {p.name for p in beijing.iterdir()}, "utc": {"ch1_20260101T080000.ts"}},
    )
    assert [s.start_us - T0 for s in rig.segments("bj")] == [0, 2 * S, 4 * S]
    assert rig.buffer.gaps("bj") == []
    assert [s.start_us - T0 for s in rig.segments("utc")] == [8 * 3600 * S, 8 * 3600 * S + 2 * S]


def test_a_file_with_an_unparseable_name_is_refused_and_the_rest_recorded(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.ts", seconds=4)
    write_media(folder / "recording-final.ts", seconds=4)
    write_media(folder / "ch1_20261399T000000.ts", seconds=4)  # month 13
    write_media(folder / "ch1_20260101T000004.ts", seconds=4)
    with caplog.at_level(logging.ERROR):
        rig.run(nvr("un", folder), names={"un": {p.name for p in folder.iterdir()}})
    segs = rig.segments("un")
    assert_tiles(segs, T0, T0 + 8 * S)
    assert rig.buffer.gaps("un") == []
    rejected = [e.detail for e in rig.events if e.kind == "file_rejected"]
    assert len(rejected) == 2
    for name in ("recording-final.ts", "ch1_20261399T000000.ts"):
        assert any(
            f"camera un: {folder / name} has no start time in its name" in d for d in rejected
        )
        assert f"{folder / name} has no start time" in caplog.text


def test_audio_that_stops_or_changes_is_an_event_and_video_goes_on(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.mov", audio="pcm_alaw", seconds=4)
    write_media(folder / "ch1_20260101T000004.ts", audio="aac", seconds=4)
    write_media(folder / "ch1_20260101T000008.ts", seconds=4)
    rig.run(nvr("au", folder), names={"au": {p.name for p in folder.iterdir()}})
    segs = rig.segments("au")
    assert_tiles(segs, T0, T0 + 12 * S)
    assert rig.kinds("au") == ["audio_changed", "audio_lost"]
    details = [e.detail for e in rig.events]
    assert "pcm_alaw 8000 Hz 1 ch to aac 16000 Hz 1 ch" in details[0]
    assert "no longer sends audio" in details[1]
    assert [set(counted(rig.buffer.path_of(s))) for s in segs] == [{"h264", "aac"}] * 4 + [
        {"h264"}
    ] * 2


def test_an_audio_only_file_is_refused_with_a_clear_error(rig: Rig) -> None:
    folder = rig.folder("nvr")
    out = av.open(str(folder / "ch1_20260101T000000.ts"), "w")
    a = out.add_stream("aac", rate=16000, layout="mono")
    for i in range(50):
        frame = AudioFrame(format="s16", layout="mono", samples=1024)
        frame.planes[0].update(b"\x00\x10" * 1024)
        frame.rate, frame.pts = 16000, i * 1024
        for packet in a.encode(frame):
            out.mux(packet)
    out.close()
    write_media(folder / "ch1_20260101T000010.ts", seconds=2)
    rig.run(nvr("ao", folder), names={"ao": {p.name for p in folder.iterdir()}})
    rejected = [e.detail for e in rig.events if e.kind == "file_rejected"]
    assert len(rejected) == 1
    assert "sends audio only (aac), no video" in rejected[0] and "camera ao:" in rejected[0]
    assert [s.start_us - T0 for s in rig.segments("ao")] == [10 * S]


def test_a_codec_switch_mid_file_starts_a_discontinuity_segment_and_nothing_else_is_lost(
    rig: Rig, tmp_path: Path
) -> None:
    folder = rig.folder("nvr")
    h264 = write_media(tmp_path / "a.ts", seconds=6, fmt="mpegts")
    h265 = write_media(tmp_path / "b.ts", video="libx265", seconds=6, fmt="mpegts")
    (folder / "ch1_20260101T000000.ts").write_bytes(h264.read_bytes() + h265.read_bytes())
    rig.run(nvr("sw", folder), names={"sw": {"ch1_20260101T000000.ts"}})
    segs = rig.segments("sw")
    codecs = [set(counted(rig.buffer.path_of(s))) for s in segs]
    assert codecs[:3] == [{"h264"}] * 3 and codecs[3:] and all(c == {"hevc"} for c in codecs[3:])
    assert [s.duration_us for s in segs[:3]] == [2 * S] * 3  # the H.264 part, all of it
    assert segs[3].flags & SegmentFlag.DISCONTINUITY
    for seg in segs:
        assert ffmpeg_messages("-i", str(rig.buffer.path_of(seg))) == ""
    gaps = rig.buffer.gaps("sw")
    assert len(gaps) == 1 and gaps[0].reason == "video codec changed mid-stream from H.264 to H.265"
    assert gaps[0].start_us == segs[2].end_us and gaps[0].end_us == segs[3].start_us
    assert gaps[0].end_us - gaps[0].start_us <= S  # at most the new codec's first GOP
    assert rig.kinds("sw") == ["codec_changed"]


def test_a_corrupt_h265_nal_never_stops_capture(rig: Rig, tmp_path: Path) -> None:
    folder = rig.folder("nvr")
    src = write_media(tmp_path / "a.ts", video="libx265", seconds=8, fmt="mpegts")
    data = bytearray(src.read_bytes())
    # Scramble the payload (not the 4-byte TS headers) of 40 packets in the middle: NAL
    # headers and slice data of a few frames become garbage.
    start = (len(data) // 188 // 2) * 188
    for pos in range(start, start + 40 * 188, 188):
        data[pos + 4 : pos + 188] = os.urandom(184)
    (folder / "ch1_20260101T000000.ts").write_bytes(bytes(data))
    write_media(folder / "ch1_20260101T000008.ts", video="libx265", seconds=4)
    rig.run(nvr("cn", folder), names={"cn": {p.name for p in folder.iterdir()}})
    segs = rig.segments("cn")
    gaps = rig.buffer.gaps("cn")
    spans = sorted([(s.start_us, s.end_us) for s in segs] + [(g.start_us, g.end_us) for g in gaps])
    assert spans[0][0] == T0 and spans[-1][1] == T0 + 12 * S
    assert all(b[0] == a[1] for a, b in zip(spans, spans[1:], strict=False)), spans
    assert sum(s.duration_us for s in segs) >= 10 * S  # the damage costs at most a GOP or two
    assert [s.start_us - T0 for s in segs[-2:]] == [8 * S, 10 * S]  # the next file is whole
    assert rig.buffer.verify_chain("cn", check_files=True) == []


def test_untimed_packets_at_connect_never_reach_the_muxer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As FFmpeg's RTP depacketizer hands them out on a B-frame camera with audio: the first
    keyframe without timestamps, the next frames with a pts but no dts. The segment opens at
    the first keyframe with both; nothing is dropped for a muxer error, no gap appears."""
    src = write_media(tmp_path / "a.ts", audio="aac", seconds=7, fmt="mpegts")
    with SegmentBuffer.open(tmp_path / "buffer", 10**9, SystemClock()) as buffer:
        writer = SegmentWriter("c1", buffer, CutPolicy.for_seconds(2))
        with av.open(str(src)) as c, caplog.at_level(logging.WARNING):
            video = c.streams.video[0]
            writer.begin(video, T0, live=False, audio=c.streams.audio[0])
            seen = 0
            for packet in c.demux(list(c.streams)):
                if not packet.size:
                    continue
                if packet.stream_index == video.index:
                    seen += 1
                    if seen == 1:
                        packet.pts = packet.dts = None
                    elif seen <= 4:
                        packet.dts = None
                writer.feed(packet)
            writer.end(truncated=False)
        segs = buffer.segments("c1")
        assert "cannot write a segment file" not in caplog.text
        assert writer.untimed_dropped >= 4
        assert buffer.gaps("c1") == []
        assert [s.duration_us for s in segs] == [2 * S, 2 * S, 2 * S]  # from the 2nd keyframe
        assert all(b.start_us == a.end_us for a, b in zip(segs, segs[1:], strict=False))
        for seg in segs:
            path = buffer.path_of(seg)
            assert ffmpeg_messages("-i", str(path)) == ""
            assert set(counted(path)) == {"h264", "aac"}


def test_audio_that_stops_mid_recording_is_an_event_and_video_goes_on(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_media(folder / "ch1_20260101T000000.ts", audio="aac", seconds=16, audio_seconds=5)
    rig.run(nvr("st", folder), names={"st": {"ch1_20260101T000000.ts"}})
    segs = rig.segments("st")
    assert_tiles(segs, T0, T0 + 16 * S)
    assert rig.kinds("st") == ["audio_lost"]
    assert "no audio for 5 s (aac 16000 Hz 1 ch); video goes on" in rig.events[0].detail
    tracks = [set(counted(rig.buffer.path_of(s))) for s in segs]
    assert tracks[:3] == [{"h264", "aac"}] * 3  # the sound while there was some
    assert tracks[3:] == [{"h264"}] * 5  # then video-only segments, not empty audio tracks
    for seg in segs:
        assert ffmpeg_messages("-i", str(rig.buffer.path_of(seg))) == ""


@pytest.mark.parametrize(("video", "audio"), [("libx264", "aac"), ("libx265", "pcm_alaw")])
def test_mp4_segments_carry_h265_and_audio_too(rig: Rig, video: str, audio: str) -> None:
    folder = rig.folder("nvr")
    suffix = ".ts" if audio == "aac" else ".mov"
    write_media(folder / f"ch1_20260101T000000{suffix}", video=video, audio=audio, seconds=6)
    cam = nvr("m4", folder).model_copy(update={"container": "mp4"})
    rig.run(cam, names={"m4": {f"ch1_20260101T000000{suffix}"}})
    segs = rig.segments("m4")
    assert [s.duration_us for s in segs] == [2 * S] * 3
    assert rig.buffer.gaps("m4") == []
    codec = "h264" if video == "libx264" else "hevc"
    for seg in segs:
        path = rig.buffer.path_of(seg)
        assert path.suffix == ".mp4"
        assert ffmpeg_messages("-i", str(path)) == ""
        assert set(counted(path)) == {codec, "aac"}
