"""vigil-camsim against real clients: PyAV pulls RTSP from the real GStreamer server.

One emulator with a camera per test serves most tests (each fault gets its own camera, so
tests do not disturb each other); the launcher, the fixture, the cache and the CLI get their
own processes. Small pictures (320x180, keyframe every 1 s) keep the machine free.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import av.error
import pytest

from edge_agent.clock import SystemClock
from tests.fixtures.camsim import TEST_DEFAULTS
from tests.support import ManagedProcess, port_open, wait_until
from vigil_camsim.client import CamsimApiError, CamsimClient
from vigil_camsim.handheld import ClipFormat, Corruption, HandheldConfig, HandheldEmulator
from vigil_camsim.launcher import CamsimError, CamsimProcess, check_gstreamer, free_ports

GOP_S = TEST_DEFAULTS["gop_seconds"]
FPS = TEST_DEFAULTS["fps"]


@dataclass
class Pull:
    """What a client saw: (pts seconds, keyframe) per packet, decoded sizes, how it ended."""

    packets: list[tuple[float, bool]] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    untimed: int = 0
    first_is_keyframe: bool | None = None
    ended: str = "time"
    error: Exception | None = None
    width: int = 0
    height: int = 0
    codec: str = ""

    @property
    def keyframe_times(self) -> list[float]:
        return [t for t, key in self.packets if key]


def pull(
    url: str,
    seconds: float,
    transport: str = "tcp",
    decode: bool = False,
    read_timeout: float = 5.0,
    after: tuple[float, Callable[[], object]] | None = None,
) -> Pull:
    """Read `url` for `seconds` of wall time; run `after[1]` once `after[0]` seconds in."""
    result = Pull()
    container = av.open(url, options={"rtsp_transport": transport}, timeout=(10.0, read_timeout))
    started = time.monotonic()
    fired = after is None
    try:
        stream = container.streams.video[0]
        result.codec = stream.codec_context.name
        result.width, result.height = stream.codec_context.width, stream.codec_context.height
        for packet in container.demux(stream):
            elapsed = time.monotonic() - started
            if result.first_is_keyframe is None:
                result.first_is_keyframe = packet.is_keyframe
            if packet.pts is None:
                result.untimed += 1
            else:
                result.packets.append((float(packet.pts * packet.time_base), packet.is_keyframe))
            if decode:
                for frame in packet.decode():
                    result.sizes.append((frame.width, frame.height))
            if not fired and after is not None and elapsed >= after[0]:
                fired = True
                after[1]()
            if elapsed >= seconds:
                break
        else:
            result.ended = "eof"
    except av.error.FFmpegError as exc:
        result.ended, result.error = "error", exc
    finally:
        container.close()
    return result


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)]


@pytest.fixture(scope="module")
def cams(camsim_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamsimProcess]:
    log = tmp_path_factory.mktemp("camsim") / "camsim.log"
    process = CamsimProcess.start(cameras=8, log_path=log, **TEST_DEFAULTS)
    yield process
    process.stop()


def test_stream_is_h264_at_the_configured_size_gop_and_rate(cams: CamsimProcess) -> None:
    t0 = time.monotonic()
    got = pull(cams.url(1), seconds=3.5)  # longer than the 2 s loop: crosses its seam
    wall = time.monotonic() - t0
    assert got.ended == "time", got.error
    assert got.codec == "h264" and (got.width, got.height) == (320, 180)
    times = [t for t, _ in got.packets]
    assert all(b > a for a, b in zip(times, times[1:], strict=False)), "timestamps not monotonic"
    assert set(gaps(times)) == {round(1 / FPS, 3)}, "frames not paced at 1/fps"
    keys = got.keyframe_times
    assert len(keys) >= 3 and set(gaps(keys)) == {GOP_S}
    rate = (len(got.packets) - 1) / (times[-1] - times[0])
    assert rate == pytest.approx(FPS, rel=0.01)
    assert len(got.packets) / wall == pytest.approx(FPS, rel=0.5)  # paced in real time
    assert got.first_is_keyframe, "a new client must start at a keyframe"
    assert got.untimed <= 1  # FFmpeg leaves the very first RTSP packet without a pts


def test_udp_transport_works(cams: CamsimProcess) -> None:
    got = pull(cams.url(2), seconds=2.5, transport="udp")
    assert got.ended == "time", got.error
    assert len(got.packets) >= 25
    assert set(gaps(got.keyframe_times)) == {GOP_S}


def test_two_cameras_send_different_pictures(cams: CamsimProcess) -> None:
    def first_picture(url: str) -> bytes:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=(10.0, 5.0)) as c:
            for frame in c.decode(video=0):
                return bytes(frame.planes[0])
        raise AssertionError("no frame")

    assert first_picture(cams.url(1)) != first_picture(cams.url(2))
    labels = {c.id: c.label for c in cams.client.cameras()}
    assert labels["1"] == "CAM 1" and labels["2"] == "CAM 2"


def test_stop_ends_the_stream_and_refuses_clients_until_start(cams: CamsimProcess) -> None:
    got = pull(cams.url(3), seconds=10, after=(1.0, lambda: cams.client.stop(3)))
    assert got.ended == "eof" and got.packets
    assert cams.client.camera(3).state == "stopped"
    with pytest.raises(av.error.HTTPNotFoundError):
        av.open(cams.url(3), options={"rtsp_transport": "tcp"}, timeout=(10.0, 5.0))
    assert cams.client.start(3).running
    assert pull(cams.url(3), seconds=1.0).packets


def test_stall_keeps_the_connection_but_sends_nothing(cams: CamsimProcess) -> None:
    seen: dict[str, object] = {}

    def stall() -> None:
        info = cams.client.stall(4)
        seen["stalled"], seen["clients"] = info.stalled, info.clients

    got = pull(cams.url(4), seconds=20, read_timeout=1.5, after=(1.0, stall))
    assert got.ended == "error" and isinstance(got.error, av.error.ExitError)
    assert seen == {"stalled": True, "clients": 1}
    assert got.packets[-1][0] - got.packets[0][0] < 3.0  # nothing after the stall
    assert not cams.client.unstall(4).stalled
    resumed = pull(cams.url(4), seconds=1.5)
    assert resumed.ended == "time" and len(resumed.packets) >= 10 and resumed.first_is_keyframe


def test_drop_closes_connections_and_reconnect_works(cams: CamsimProcess) -> None:
    got = pull(cams.url(5), seconds=10, after=(1.0, lambda: cams.client.drop(5)))
    assert got.ended == "eof" and got.packets
    wait_until(lambda: cams.client.camera(5).clients == 0, 5, "the dropped client to go")
    again = pull(cams.url(5), seconds=1.5)
    assert again.ended == "time" and len(again.packets) >= 10
    assert cams.client.camera(5).running


def test_resolution_changes_mid_stream_at_a_keyframe(cams: CamsimProcess) -> None:
    got = pull(
        cams.url(6),
        seconds=4.0,
        decode=True,
        after=(1.0, lambda: cams.client.set_resolution(6, 640, 360)),
    )
    assert got.ended == "time", got.error
    assert got.sizes[0] == (320, 180) and got.sizes[-1] == (640, 360)
    switch = got.sizes.index((640, 360))
    assert set(got.sizes[:switch]) == {(320, 180)} and set(got.sizes[switch:]) == {(640, 360)}
    info = cams.client.camera(6)
    assert (info.width, info.height) == (640, 360) and info.pending_resolution is None


def test_broken_gop_leaves_a_longer_stretch_without_keyframe(cams: CamsimProcess) -> None:
    got = pull(cams.url(7), seconds=5.0, after=(0.5, lambda: cams.client.broken_gop(7, gops=1)))
    assert got.ended == "time", got.error
    intervals = gaps(got.keyframe_times)
    assert max(intervals) >= 2 * GOP_S, intervals
    assert cams.client.camera(7).frames_withheld == 1


def test_control_api_refuses_bad_requests_and_keeps_running(cams: CamsimProcess) -> None:
    client = cams.client
    before = client.camera(8)
    cases: list[tuple[str, str, bytes | dict[str, Any] | None, int]] = [
        ("POST", "/cameras/8/resolution", b"{broken", 400),
        ("POST", "/cameras/8/resolution", {"width": 641, "height": 360}, 400),
        ("POST", "/cameras/8/resolution", {"width": 640, "height": 360, "evil": 1}, 400),
        ("POST", "/cameras/8/broken_gop", {"gops": 99}, 400),
        ("POST", "/cameras/99/stop", None, 404),
        ("GET", "/cameras/99", None, 404),
        ("POST", "/cameras/8/explode", None, 404),
        ("GET", "/cameras/8/stop", None, 405),
        ("POST", "/cameras/8/stop", b"x" * 20000, 413),
    ]
    for method, path, body, status in cases:
        got_status, payload = client.request(method, path, body)
        assert got_status == status, (path, payload)
        assert isinstance(payload.get("error"), str) and payload["error"]
    got_status, payload = client.request(
        "POST", "/cameras/8/stop", b"{}", headers={"Content-Length": "nonsense"}
    )
    assert got_status == 400
    with pytest.raises(CamsimApiError) as info:
        client.stop(99)
    assert info.value.status == 404
    after = client.camera(8)
    assert client.health() and cams.alive()
    assert (after.state, after.width, after.stalled, after.broken_gops_pending) == (
        before.state,
        before.width,
        before.stalled,
        before.broken_gops_pending,
    )
    assert pull(cams.url(8), seconds=1.0).packets


def test_two_clients_of_one_camera_each_get_their_own_steady_clock(cams: CamsimProcess) -> None:
    """A second client joining must not touch the first one's timestamps. (The emulator once
    stamped one shared Gst.Buffer per frame for every client in turn: PyGObject's
    `Buffer.copy()` returned the same buffer, so the first client's clock jumped back and
    forth by the time between the two connections, and the agent re-based ~90 times a second.)"""
    second: dict[str, Pull] = {}
    joiner = threading.Thread(target=lambda: second.setdefault("b", pull(cams.url(8), 2.0)))
    first = pull(cams.url(8), seconds=4.0, after=(1.0, joiner.start))
    joiner.join(10)
    assert first.ended == "time", first.error
    assert second["b"].ended == "time" and len(second["b"].packets) >= 10
    for got in (first, second["b"]):
        times = [t for t, _ in got.packets]
        assert set(gaps(times)) == {round(1 / FPS, 3)}, gaps(times)


def test_cameras_can_be_added_at_run_time(cams: CamsimProcess) -> None:
    info = cams.client.add_camera(camera_id="extra", label="EXTRA 1")
    assert info.url == cams.url("extra") and info.running
    got = pull(cams.url("extra"), seconds=1.5)
    assert got.codec == "h264" and got.packets
    with pytest.raises(CamsimApiError) as dup:
        cams.client.add_camera(camera_id="extra")
    assert dup.value.status == 409
    assert "extra" in cams.camera_ids


def test_fixture_starts_and_stops_by_pid(camsim: Callable[..., CamsimProcess]) -> None:
    cams = camsim(cameras=2)
    assert cams.alive() and cams.urls == [cams.url(1), cams.url(2)]
    assert cams.camera_ids == ["1", "2"]
    got = pull(cams.url(2), seconds=1.0)
    assert got.packets
    cams.stop()
    assert not cams.alive() and not port_open(cams.port) and not port_open(cams.control_port)


def test_loops_are_cached_and_a_damaged_cache_is_re_encoded(
    camsim: Callable[..., CamsimProcess], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"

    def ready_line(cams: CamsimProcess) -> str:
        return [line for line in cams.log_path.read_text().splitlines() if "ready in" in line][-1]

    for expected in ("(1 encoded, 0 from cache", "(0 encoded, 1 from cache"):
        cams = camsim(cameras=1, width=160, height=90, cache_dir=cache)
        cams.stop()
        assert expected in ready_line(cams)
    (loop_file,) = cache.glob("*.loop")
    loop_file.write_bytes(loop_file.read_bytes()[:500])  # truncated by a crash, say
    cams = camsim(cameras=1, width=160, height=90, cache_dir=cache)
    assert pull(cams.url(1), seconds=1.0).packets
    cams.stop()
    assert "(1 encoded, 0 from cache" in ready_line(cams)


def test_launcher_fails_clearly(camsim_ready: None, tmp_path: Path) -> None:
    with pytest.raises(CamsimError, match="apt-get install"):
        CamsimProcess.start(python="/nonexistent/python3")
    assert check_gstreamer("/nonexistent/python3") is not None
    with pytest.raises(CamsimError, match="even"):
        CamsimProcess.start(width=321, height=180, log_path=tmp_path / "bad.log")
    with CamsimProcess.start(**TEST_DEFAULTS, log_path=tmp_path / "a.log") as running:
        taken = (running.port, running.control_port)
        spare = next(p for p in free_ports("127.0.0.1", 3) if p not in taken)
        with pytest.raises(CamsimError, match="cannot listen"):
            CamsimProcess.start(
                **TEST_DEFAULTS, port=running.port, control_port=spare, log_path=tmp_path / "b.log"
            )


def test_cli_serve_runs_the_server_under_one_pid(camsim_ready: None, tmp_path: Path) -> None:
    port, control = free_ports("127.0.0.1", 2)  # two calls to free_port() may return one port
    proc = ManagedProcess(
        [
            sys.executable,
            "-m",
            "vigil_camsim",
            "serve",
            f"--port={port}",
            f"--control-port={control}",
            "--width=320",
            "--height=180",
            "--bitrate=300",
            "--gop-seconds=1",
            "--loop-seconds=2",
            "--cameras=2",
        ],
        tmp_path / "serve.log",
    )
    try:
        proc.wait_port(control, timeout=60)
        wait_until(lambda: CamsimClient(f"http://127.0.0.1:{control}").health(), 30, "control API")
        assert len(CamsimClient(f"http://127.0.0.1:{control}").cameras()) == 2
        assert pull(f"rtsp://127.0.0.1:{port}/cam/2", seconds=1.0).packets
        assert f"rtsp://127.0.0.1:{port}/cam/1" in proc.log_text()
    finally:
        proc.stop()
    assert proc.proc.returncode == 0


# --- handheld terminal ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp4", "ts"])
def test_handheld_clips_appear_whole_and_decode(fmt: ClipFormat, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    config = HandheldConfig(
        drop_dir=drop, fmt=fmt, clip_seconds=1.2, interval_seconds=0.3, width=320, height=180
    )
    emulator = HandheldEmulator(config, SystemClock())
    stop = threading.Event()
    seen: dict[str, int] = {}
    hidden: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # a consumer polling the folder while clips are written
        while True:
            finished = done.is_set()  # one more scan after the last clip is in place
            for entry in os.scandir(drop) if drop.exists() else []:
                if entry.name.startswith("."):
                    hidden.add(entry.name)
                else:
                    seen.setdefault(entry.name, entry.stat().st_size)
            if finished:
                return
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        written = emulator.run(stop, count=3)
    finally:
        done.set()
        watcher.join()
    assert [p.name for p in written] == sorted(p.name for p in drop.iterdir())
    assert all(p.suffix == f".{fmt}" for p in written)
    assert set(seen) == {p.name for p in written}
    assert hidden and all(name.endswith(".part") for name in hidden)  # written under a temp name
    for path in written:
        assert seen[path.name] == path.stat().st_size, "a consumer saw a half-written clip"
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            frames = list(c.decode(stream))
            assert stream.codec_context.name == "h264"
            assert (frames[0].width, frames[0].height) == (320, 180)
            assert len(frames) == 30  # 1.2 s at 25 fps
            first, last = frames[0].pts, frames[-1].pts
            assert first is not None and last is not None and stream.time_base is not None
            duration = (last - first) * stream.time_base + 1 / 25
            assert float(duration) == pytest.approx(1.2, abs=0.05)
            label = f"HH01 CLIP {written.index(path) + 1}"
            if fmt == "mp4":
                assert c.metadata["title"] == label
            else:
                assert label.encode() in path.read_bytes()[:4096]  # the service name


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_handheld_can_leave_a_corrupt_clip(how: Corruption, tmp_path: Path) -> None:
    config = HandheldConfig(drop_dir=tmp_path, width=320, height=180)
    path = HandheldEmulator(config, SystemClock()).write_clip(corrupt=how)
    assert path.exists() and not list(tmp_path.glob(".*"))
    with pytest.raises(av.error.FFmpegError):
        with av.open(str(path)) as c:
            list(c.decode(video=0))


def test_cli_handheld_writes_clips(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil_camsim",
            "handheld",
            "--dir",
            str(tmp_path),
            "--count",
            "2",
            "--interval",
            "0",
            "--clip-seconds",
            "0.4",
            "--format",
            "ts",
            "--width",
            "160",
            "--height",
            "90",
            "--corrupt-every",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    clips = sorted(tmp_path.glob("*.ts"))
    assert len(clips) == 2 and "wrote 2 clip(s)" in result.stdout
    with av.open(str(clips[0])) as c:
        assert len(list(c.decode(video=0))) == 10
    assert clips[1].stat().st_size < clips[0].stat().st_size  # the truncated one
