"""Test recordings made on the spot with PyAV: H.265 (libx265) or H.264 (libx264) video with
AAC audio, cut into keyframe-aligned MPEG-TS segments with continuous timestamps across files
(what the agent's segmenter produces), and helpers to ingest them into a real controller over
the real mutual-TLS gRPC upload path.

Small (320x240, 25 fps, a keyframe every 2 s) so a test encodes a few segments in a second.
Frames change each frame and the audio is a 440 Hz tone, so both decode to something real.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import grpc
import httpx
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from controller.api.component import HttpComponent
from controller.api.deps import ApiDeps
from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.fleet.alerts import Alert
from controller.fleet.history import HealthPoint
from controller.fleet.monitor import DeviceRecord
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.users import create_user
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.controller_proc import (
    CHUNK,
    device_channel,
    issue_device,
    prepare_data_dir,
    register,
)

WIDTH, HEIGHT, FPS, GOP = 320, 240, 25, 50  # a keyframe every 2 s
AUDIO_RATE = 8000 * 2  # 16 kHz mono AAC (what the edge makes of 8 kHz G.711 is similar)

VIDEO_OPTIONS = {
    "libx265": {
        "preset": "ultrafast",
        "x265-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=0:"
        "repeat-headers=1:log-level=error",
    },
    "libx264": {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "bf": "0",
        "sc_threshold": "0",
        "g": str(GOP),
        "keyint_min": str(GOP),
    },
}


@dataclass(frozen=True)
class MadeSegment:
    path: Path
    start_us: int
    duration_us: int
    data: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


def _picture(i: int) -> VideoFrame:
    """A moving gradient over shifting colours: every frame differs, the picture is not flat."""
    frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma, cb, cr = frame.planes
    row = bytes((x + i * 4) % 256 for x in range(luma.line_size))
    luma.update(row * HEIGHT)
    half = bytes((x * 2 + i) % 256 for x in range(cb.line_size))
    cb.update(half * (HEIGHT // 2))
    cr.update(bytes([(i * 7) % 256]) * cr.buffer_size)
    return frame


def _tone(n: int, samples: int) -> AudioFrame:
    pcm = array(
        "h",
        (
            int(9000 * math.sin(2 * math.pi * 440 * (k + n * samples) / AUDIO_RATE))
            for k in range(samples)
        ),
    )
    frame = AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(pcm.tobytes())
    frame.sample_rate = AUDIO_RATE
    frame.pts = n * samples
    frame.time_base = Fraction(1, AUDIO_RATE)
    return frame


def record(path: Path, seconds: float, codec: str = "libx265", audio: bool = True) -> Path:
    """One continuous MPEG-TS recording (video `codec`, AAC audio unless `audio` is False)."""
    out = av.open(str(path), "w", format="mpegts")
    video = out.add_stream(codec, rate=FPS)
    assert isinstance(video, VideoStream)
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.options = dict(VIDEO_OPTIONS[codec])
    sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
    assert sound is None or isinstance(sound, AudioStream)
    frames = int(seconds * FPS)
    chunk = 1024
    audio_frames = int(seconds * AUDIO_RATE / chunk)
    a = 0
    for i in range(frames):
        frame = _picture(i)
        frame.pts = i
        frame.time_base = Fraction(1, FPS)
        for packet in video.encode(frame):
            out.mux(packet)
        while sound is not None and a < audio_frames and a * chunk / AUDIO_RATE <= i / FPS:
            for packet in sound.encode(_tone(a, chunk)):
                out.mux(packet)
            a += 1
    for packet in video.encode(None):
        out.mux(packet)
    if sound is not None:
        for packet in sound.encode(None):
            out.mux(packet)
    out.close()
    return path


def split(recording: Path, out_dir: Path, first_start_us: int) -> list[MadeSegment]:
    """Cut a recording at video keyframes into segment files, remuxed (no re-encoding), with
    timestamps left as they are (continuous across files), like the agent's segmenter."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces: list[tuple[Path, int, int]] = []  # path, first video pts, last video pts
    with av.open(str(recording)) as src:
        vin = src.streams.video[0]
        streams = [vin, *src.streams.audio]
        out: av.container.OutputContainer | None = None
        mapping: dict[int, av.stream.Stream] = {}
        first = last = 0
        path = out_dir / "seg000.ts"
        for packet in src.demux(streams):
            if packet.dts is None:
                continue
            if packet.stream is vin and packet.is_keyframe:
                if out is not None:
                    out.close()
                    pieces.append((path, first, last))
                path = out_dir / f"seg{len(pieces):03d}.ts"
                out = av.open(str(path), "w", format="mpegts")
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                first = packet.pts or 0
            if out is None:
                continue
            if packet.stream is vin and packet.pts is not None:
                last = max(last, packet.pts)
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
        if out is not None:
            out.close()
            pieces.append((path, first, last))
        tick = float(vin.time_base or Fraction(1, 90000))
    segments = []
    frame_us = 1_000_000 // FPS
    for n, (path, first, last) in enumerate(pieces):
        if n + 1 < len(pieces):
            duration = round((pieces[n + 1][1] - first) * tick * 1_000_000)
        else:
            duration = round((last - first) * tick * 1_000_000) + frame_us
        start = first_start_us + round((first - pieces[0][1]) * tick * 1_000_000)
        segments.append(MadeSegment(path, start, duration, path.read_bytes()))
    return segments


def make_segments(
    work: Path, seconds: float, codec: str = "libx265", audio: bool = True, start_us: int = 0
) -> list[MadeSegment]:
    """Segments of a fresh recording ending about now (or starting at `start_us`)."""
    work.mkdir(parents=True, exist_ok=True)
    recording = record(work / f"rec-{codec}.ts", seconds, codec, audio)
    start = start_us or SystemClock().now_us() - int((seconds + 5) * 1_000_000)
    return split(recording, work / f"segs-{codec}", start)


def upload_segment(
    stub: ingest_pb2_grpc.IngestStub,
    camera_id: str,
    segment_id: str,
    seg: MadeSegment,
    prev_sha256: bytes = b"",
    data: bytes | None = None,
) -> ingest_pb2.UploadResponse:
    """Upload one segment file (or `data` in its place) through the real ingest service."""
    body = seg.data if data is None else data
    header = ingest_pb2.SegmentHeader(
        segment_id=segment_id,
        camera_id=camera_id,
        start_unix_us=seg.start_us,
        duration_us=seg.duration_us,
        size_bytes=len(body),
        sha256=hashlib.sha256(body).digest(),
        prev_sha256=prev_sha256,
        offset=0,
        container="ts",
    )

    def parts() -> Iterator[ingest_pb2.UploadRequest]:
        yield ingest_pb2.UploadRequest(header=header)
        for pos in range(0, len(body), CHUNK):
            yield ingest_pb2.UploadRequest(chunk=body[pos : pos + CHUNK])

    reply: ingest_pb2.UploadResponse = stub.Upload(parts(), timeout=30)
    return reply


def upload_all(
    channel: grpc.Channel, camera_id: str, segments: list[MadeSegment], prefix: str
) -> list[str]:
    """Upload segments in order, chained; returns their ids."""
    stub = ingest_pb2_grpc.IngestStub(channel)
    ids = []
    prev = b""
    for n, seg in enumerate(segments):
        segment_id = f"{camera_id}-{prefix}-{n:03d}"  # ids live in their camera's namespace
        reply = upload_segment(stub, camera_id, segment_id, seg, prev)
        assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED, reply
        prev = seg.sha256
        ids.append(segment_id)
    return ids


# --- a controller with H.265, H.264 and damaged H.265 footage --------------------------------

PASSWORD = "correct horse battery"
USER = "wd-op"  # 武都区 operator: the cameras' county
HEVC_CAM, AVC_CAM, BAD_CAM = "hevc1", "avc1", "bad1"


@dataclass
class MediaWorld:
    controller: Controller
    http: HttpComponent
    channel: grpc.Channel
    hevc: list[MadeSegment]
    avc: list[MadeSegment]
    ids: dict[str, list[str]]  # camera -> segment ids, oldest first

    @property
    def base(self) -> str:
        return self.http.base_url

    @property
    def deps(self) -> ApiDeps:
        deps: ApiDeps = self.http.app.state.deps
        return deps

    def login(self) -> str:
        r = httpx.post(f"{self.base}/api/v1/login", json={"user_id": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    def grant(self, session: str, camera: str, operations: list[str]) -> str:
        now = self.controller.clock.now_us()
        r = httpx.post(
            f"{self.base}/api/v1/grants",
            json={
                "operations": operations,
                "cameras": [camera],
                "from_us": now - 10 * 60 * 1_000_000,
                "to_us": now,
                "purpose": "media test",
            },
            headers={"Authorization": f"Bearer {session}"},
        )
        assert r.status_code == 201, r.text
        token: str = r.json()["token"]
        return token

    def playlist_url(self, session: str, grant: str, camera: str, rendition: str = "") -> str:
        now = self.controller.clock.now_us()
        params = {
            "from": str(now - 10 * 60 * 1_000_000),
            "to": str(now),
            "grant": grant,
            "session": session,
        }
        if rendition:
            params["rendition"] = rendition
        return str(httpx.URL(f"{self.base}/play/{camera}.m3u8", params=params))

    def playlist(self, camera: str, rendition: str = "") -> list[str]:
        """Absolute segment URLs of a fresh playback playlist of `camera`."""
        session = self.login()
        grant = self.grant(session, camera, ["playback"])
        r = httpx.get(self.playlist_url(session, grant, camera, rendition), timeout=30)
        assert r.status_code == 200, r.text
        return [self.base + line for line in r.text.splitlines() if line.startswith("/play/")]


def corrupt(data: bytes, seed: int = 1) -> bytes:
    """Damage the H.265 payload of half the TS packets after the tables (PAT, PMT): the
    container still names an hevc stream, but no picture decodes."""
    rnd = random.Random(seed)
    out = bytearray(data)
    for pos in range(376, len(out) - 187, 188):
        if rnd.random() < 0.5:
            out[pos + 8 : pos + 188] = rnd.randbytes(180)
    return bytes(out)


class EmptyFleet:
    """A fleet view with no devices heard from (the tests here are not about the fleet)."""

    def devices(self) -> list[DeviceRecord]:
        return []

    def device(self, device_id: str) -> DeviceRecord | None:
        return None

    def alerts(self, device_id: str | None = None) -> list[Alert]:
        return []

    def history(self, device_id: str) -> list[HealthPoint]:
        return []


@contextmanager
def media_world(
    tmp: Path, transcode: dict[str, Any] | None = None, fleet: bool = False
) -> Iterator[MediaWorld]:
    """A controller (SQLite, local store, HTTP as `serve` wires it) holding 8 s of an H.265
    + AAC camera, 6 s of an H.264 + AAC camera, and one damaged H.265 segment, all uploaded
    through the real mutual-TLS ingest. `fleet`: give the API an (empty) fleet view, so the
    console's device and alert panels answer 200 without an MQTT broker."""
    data = tmp / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", [HEVC_CAM, AVC_CAM, BAD_CAM])
    ensure_keys(data)
    dev = issue_device(data, "dev1", tmp / "dev1")
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(data),
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
            "mqtt": {"mode": "off"},
            "transcode": transcode or {},
        }
    )
    clock = SystemClock()
    controller = build_controller(config, clock, Parts(http=True))
    if fleet and controller.http is not None:
        controller.http.app.state.deps.fleet = EmptyFleet()
    controller.start()
    channel = device_channel(controller.grpc_port, dev)
    try:
        http = next(c for c in controller.components if isinstance(c, HttpComponent))
        create_user(
            controller.engine, clock, USER, "wudu", "operator", PASSWORD, policy=default_policy()
        )
        hevc = make_segments(tmp / "hevc", 8.0, "libx265")
        avc = make_segments(tmp / "avc", 6.0, "libx264")
        ids = {
            HEVC_CAM: upload_all(channel, HEVC_CAM, hevc, "h5"),
            AVC_CAM: upload_all(channel, AVC_CAM, avc, "h4"),
        }
        stub = ingest_pb2_grpc.IngestStub(channel)
        bad = upload_segment(stub, BAD_CAM, "bad1-000", hevc[1], data=corrupt(hevc[1].data))
        assert bad.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED, bad
        ids[BAD_CAM] = ["bad1-000"]
        yield MediaWorld(controller, http, channel, hevc, avc, ids)
    finally:
        channel.close()
        controller.stop(grace_s=1.0)
