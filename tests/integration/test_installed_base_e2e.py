"""Longnan's installed base end to end, as a user runs it: real processes, nothing in-process
(~30 s, so not a `rig` test).

`vigil-camsim` serves an H.265 camera with G.711 A-law audio and an H.264 camera with B-frames
and AAC; `vigil-camsim nvr-folder` writes an NVR folder named in Beijing time. One
`vigil-agent run` records both cameras, the folder and a camera that cannot be reached (its URL
carries a password), buffers and uploads over mutual TLS to `vigil-controller serve` (SQLite,
local object store, managed Mosquitto). Then, through the controller only:

- every segment arrives with the agent's hash, and decodes on its own;
- the catalog says hevc/h264 with profile, size and rate, and AAC audio (the A-law camera's
  audio converted at the edge: 8 kHz mono);
- the NVR files land at their UTC time (the local-time name minus 8 h);
- headless Chromium plays both cameras with sound in the console, which shows each camera's
  state and reason in Chinese (无法连接 for the unreachable one, with no password in it) and
  alert times in Beijing time; a full-page screenshot is kept;
- an export of the H.265 camera carries the audio track and its manifest names the codecs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.fixtures.browser import chromium_browser  # noqa: F401 - the fixture
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "nvr-longnan-e2e"
HEVC_CAM, BFRAMES_CAM, NVR_CAM, DOWN_CAM = "cam-h265-pcma", "cam-h264-bf", "nvr-ch01", "cam-down"
USER, PASSWORD = "city-op", "installed base e2e password"
SECRET = "s3cretPassw0rd"  # in the unreachable camera's URL: must never be shown
SHANGHAI = ZoneInfo("Asia/Shanghai")
NVR_CLIP_S, NVR_FILES = 4, 2


def _demo_module() -> ModuleType:
    """scripts/demo.py's process helpers (spawn by process group, wait for a port, stop)."""
    spec = importlib.util.spec_from_file_location("vigil_demo", ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("vigil_demo", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Rig:
    work: Path
    base: str
    nvr_start_utc_us: int  # what the first NVR file's local-time name says, in UTC

    @property
    def catalog_db(self) -> Path:
        return self.work / "controller" / "catalog.db"

    def login(self) -> str:
        r = httpx.post(f"{self.base}/api/v1/login", json={"user_id": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    def get(self, session: str, path: str, **params: Any) -> Any:
        r = httpx.get(
            self.base + path,
            params=params,
            headers={"Authorization": f"Bearer {session}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def segments(self, session: str, camera: str) -> list[dict[str, Any]]:
        now = datetime.now(tz=ZoneInfo("UTC"))
        out: list[dict[str, Any]] = self.get(
            session,
            f"/api/v1/cameras/{camera}/segments",
            **{"from": (now - timedelta(hours=3)).isoformat(), "to": now.isoformat()},
        )["segments"]
        return out

    def stored(self) -> list[tuple[str, str, str, str]]:
        """(segment_id, camera, sha256, object_key) of every catalogued segment."""
        with sqlite3.connect(f"file:{self.catalog_db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT segment_id, camera_id, sha256, object_key FROM segment"
            ).fetchall()
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def buffered(self) -> dict[str, str]:
        """segment_id -> sha256 in the agent's own buffer index (read-only, WAL)."""
        db = next((self.work / "agent" / "data").rglob("index.sqlite3"))
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT segment_id, sha256 FROM segments").fetchall()
        return {str(a): str(b) for a, b in rows}

    def count(self, camera: str) -> int:
        if not self.catalog_db.exists():
            return 0
        try:
            return sum(1 for row in self.stored() if row[1] == camera)
        except sqlite3.Error:
            return 0


def _provision(demo: Any, work: Path, ports: dict[str, int], nvr_dir: Path) -> Path:
    ctl, agent = work / "controller", work / "agent"
    demo.cli("controller", "init", "--data-dir", str(ctl))
    cams = [a for c in (HEVC_CAM, BFRAMES_CAM, NVR_CAM, DOWN_CAM) for a in ("--camera", c)]
    demo.cli(
        "controller", "register-device", "--data-dir", str(ctl), "--device-id", DEVICE,
        "--county", "wudu", "--site", "v001", *cams,
    )  # fmt: skip
    demo.cli(
        "controller", "issue-cert", "--data-dir", str(ctl), "--device-id", DEVICE,
        "--out", str(agent / "pki"),
    )  # fmt: skip
    demo.cli(
        "controller", "mqtt-account", "--data-dir", str(ctl), "--device-id", DEVICE,
        "--out", str(agent / "mqtt.password"),
    )  # fmt: skip
    demo.cli(
        "controller", "user", "add", "--data-dir", str(ctl), "--user-id", USER,
        "--org", "city", "--role", "admin", "--password-file", "-", stdin=PASSWORD,
    )  # fmt: skip
    (work / "controller.toml").write_text(
        f'data_dir = "{ctl}"\n'
        f'[grpc]\nlisten = "127.0.0.1:{ports["grpc"]}"\n'
        f'[mqtt]\nmode = "managed"\nport = {ports["mqtt"]}\n'
        f'[http]\nlisten = "127.0.0.1:{ports["http"]}"\n'
        "[fleet]\nstartup_grace_s = 3\n"
    )
    rtsp = f"rtsp://127.0.0.1:{ports['rtsp']}/cam"
    cameras = (
        f'[[cameras]]\nid = "{HEVC_CAM}"\nurl = "{rtsp}/1"\nsegment_seconds = 2\n'
        f'[[cameras]]\nid = "{BFRAMES_CAM}"\nurl = "{rtsp}/2"\nsegment_seconds = 2\n'
        f'[[cameras]]\nid = "{NVR_CAM}"\nkind = "nvr_folder"\npath = "{nvr_dir}"\n'
        'segment_seconds = 2\nsettle_seconds = 0.5\ntimezone = "Asia/Shanghai"\n'
        f'[[cameras]]\nid = "{DOWN_CAM}"\n'
        f'url = "rtsp://admin:{SECRET}@127.0.0.1:{ports["closed"]}/cam/9"\nsegment_seconds = 2\n'
    )
    config = agent / "agent.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\ncounty = "wudu"\nsite = "v001"\n'
        f'data_dir = "{agent / "data"}"\n{cameras}'
        f'[uplink]\ncontroller = "127.0.0.1:{ports["grpc"]}"\n'
        f'ca_cert = "{agent / "pki" / "ca.crt"}"\n'
        f'client_cert = "{agent / "pki" / f"{DEVICE}.crt"}"\n'
        f'client_key = "{agent / "pki" / f"{DEVICE}.key"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {ports["mqtt"]}\nusername = "{DEVICE}"\n'
        f'password_file = "{agent / "mqtt.password"}"\nhealth_interval_s = 2\n'
    )
    return config


def _nvr_folder(bindir: Path, nvr_dir: Path) -> int:
    """Two 4 s files named in Beijing time, an hour ago; returns the first one's UTC start."""
    start_local = (datetime.now(tz=SHANGHAI) - timedelta(hours=1)).replace(microsecond=0)
    subprocess.run(
        [
            str(bindir / "vigil-camsim"), "nvr-folder", "--dir", str(nvr_dir),
            "--tz", "Asia/Shanghai", "--profile", "h264",
            "--start", start_local.strftime("%Y-%m-%dT%H:%M:%S"), "--count", str(NVR_FILES),
            "--clip-seconds", str(NVR_CLIP_S), "--width", "320", "--height", "240",
        ],
        check=True, cwd=ROOT, capture_output=True, timeout=180,
    )  # fmt: skip
    # The local-time name minus 8 h, computed independently of the agent's parser.
    naive = start_local.replace(tzinfo=None)
    return int((naive - timedelta(hours=8) - datetime(1970, 1, 1)).total_seconds() * 1_000_000)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    demo_mod = _demo_module()
    work = tmp_path_factory.mktemp("installed-base")
    demo = demo_mod.Demo(work)
    ports = {k: demo_mod.free_port() for k in ("grpc", "mqtt", "http", "rtsp", "control", "closed")}
    bindir = Path(sys.executable).parent
    nvr_dir = work / "nvr" / "ch01"
    nvr_dir.mkdir(parents=True)
    try:
        nvr_start = _nvr_folder(bindir, nvr_dir)
        config = _provision(demo, work, ports, nvr_dir)
        cams = demo.spawn(
            "camsim",
            [
                str(bindir / "vigil-camsim"), "serve", "--cameras", "2",
                "--port", str(ports["rtsp"]), "--control-port", str(ports["control"]),
                "--width", "320", "--height", "240", "--fps", "25", "--bitrate", "600",
                "--gop-seconds", "1", "--label-prefix", "LONGNAN",
                "--camera-profile", "1=h265-pcma", "--camera-profile", "2=h264-bframes-aac",
            ],
        )  # fmt: skip
        ctl = demo.spawn(
            "controller",
            [
                sys.executable,
                "-m",
                "controller",
                "serve",
                "--config",
                str(work / "controller.toml"),
            ],
        )
        demo_mod.wait_port(ports["rtsp"], cams, "vigil-camsim", 180)
        demo_mod.wait_port(ports["grpc"], ctl, "vigil-controller", 60)
        demo_mod.wait_port(ports["http"], ctl, "control-centre HTTP API", 30)
        demo_mod.wait_port(ports["mqtt"], ctl, "managed Mosquitto", 30)
        demo.spawn("agent", [str(bindir / "vigil-agent"), "run", "--config", str(config)])
        r = Rig(work, f"http://127.0.0.1:{ports['http']}", nvr_start)

        def arrived() -> bool:
            dead = [name for name, proc in demo.procs if proc.poll() is not None]
            assert not dead, f"{dead} exited; see the logs below"
            return all(r.count(c) >= 4 for c in (HEVC_CAM, BFRAMES_CAM)) and r.count(NVR_CAM) >= 2

        wait_until(
            arrived,
            90,
            "4 segments of each camera and the NVR files in the city store",
            interval=0.5,
        )
        yield r
    except BaseException:
        for log in sorted(work.glob("*.log")):
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        demo.stop()
    logs = "".join(p.read_text(errors="replace") for p in work.glob("*.log"))
    assert "Traceback" not in logs, logs[-4000:]
    assert SECRET not in logs  # the camera password is never logged


def test_segments_arrive_intact_decode_alone_and_carry_their_media(rig: Rig) -> None:
    session = rig.login()
    buffered = rig.buffered()
    stored = rig.stored()
    assert stored
    for segment_id, _camera, sha, key in stored:
        assert buffered[segment_id] == sha, segment_id  # what the agent hashed arrived
        path = rig.work / "controller" / "objects" / key
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, key
        out = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0 and out.stdout + out.stderr == "", (key, out.stderr)
    expect = {
        HEVC_CAM: ("hevc", "Main", 8000),  # PCMA converted to AAC at the edge, rate kept
        BFRAMES_CAM: ("h264", "High", 16000),
    }
    for camera, (codec, profile, rate) in expect.items():
        segs = rig.segments(session, camera)
        assert len(segs) >= 4, camera
        for s in segs:
            assert s["chain_ok"] and s["flag"] == "", s
            m = s["media"]
            assert m is not None, s
            assert (m["video_codec"], m["video_profile"]) == (codec, profile), m
            assert (m["width"], m["height"]) == (320, 240), m
            assert abs(m["frame_rate"] - 25) < 0.5, m
            assert (m["audio_codec"], m["audio_sample_rate"], m["audio_channels"]) == (
                "aac",
                rate,
                1,
            ), m
        cam = rig.get(session, f"/api/v1/cameras/{camera}")
        assert cam["media"]["video_codec"] == codec and cam["media"]["audio_codec"] == "aac"


def test_nvr_files_named_in_beijing_time_land_at_their_utc_time(rig: Rig) -> None:
    segs = rig.segments(rig.login(), NVR_CAM)
    assert segs, "the NVR folder's files are in the catalog"
    first = min(s["start_us"] for s in segs)
    last = max(s["end_us"] for s in segs)
    assert abs(first - rig.nvr_start_utc_us) < 1_000_000, (first, rig.nvr_start_utc_us)
    span = NVR_CLIP_S * NVR_FILES * 1_000_000
    assert abs(last - (rig.nvr_start_utc_us + span)) < 1_000_000, (last, rig.nvr_start_utc_us)


def test_export_of_the_hevc_camera_carries_its_audio(rig: Rig, tmp_path: Path) -> None:
    session = rig.login()
    now_us = int(time.time() * 1_000_000)
    lo, hi = now_us - 10 * 60 * 1_000_000, now_us
    auth = {"Authorization": f"Bearer {session}"}
    grant = httpx.post(
        f"{rig.base}/api/v1/grants",
        json={
            "operations": ["download"],
            "cameras": [HEVC_CAM],
            "from_us": lo,
            "to_us": hi,
            "purpose": "e2e export",
        },
        headers=auth,
    )
    assert grant.status_code == 201, grant.text
    r = httpx.post(
        f"{rig.base}/api/v1/exports",
        json={"token": grant.json()["token"], "camera_id": HEVC_CAM, "from_us": lo, "to_us": hi},
        headers=auth,
        timeout=120,
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        entries = manifest["segments"]
        assert len(entries) >= 4
        for entry in entries:
            assert entry["media"]["video_codec"] == "hevc", entry
            assert entry["media"]["audio_codec"] == "aac", entry
            assert entry["media"]["audio_sample_rate"] == 8000, entry
        seg = tmp_path / "exported.ts"
        seg.write_bytes(tar.extractfile(entries[-1]["file"]).read())  # type: ignore[union-attr]
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(seg)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    streams = json.loads(probe.stdout)["streams"]
    assert {(s["codec_type"], s["codec_name"]) for s in streams} == {
        ("video", "hevc"),
        ("audio", "aac"),
    }, streams


def test_fleet_api_reports_each_camera_state_and_reason(rig: Rig) -> None:
    session = rig.login()
    wait_until(
        lambda: (
            {s["camera_id"] for s in rig.get(session, "/api/v1/camera-states")}
            >= {HEVC_CAM, BFRAMES_CAM, DOWN_CAM}
        ),
        30,
        "every RTSP camera's state in the fleet view",
        interval=0.5,
    )
    states = {s["camera_id"]: s for s in rig.get(session, "/api/v1/camera-states")}
    assert states[HEVC_CAM]["state"] == states[BFRAMES_CAM]["state"] == "streaming", states
    down = states[DOWN_CAM]
    assert (down["state"], down["connected"]) == ("unreachable", False), down
    assert "connection refused" in down["reason"].lower() and SECRET not in down["reason"], down
    detail = rig.get(session, f"/api/v1/devices/{DEVICE}")
    assert {c["camera_id"]: c["state"] for c in detail["camera_states"]} == {
        k: v["state"] for k, v in states.items()
    }


PLAY_STATS = """() => {
    const v = document.getElementById('video');
    const q = v.getVideoPlaybackQuality();
    return {time: v.currentTime, frames: q.totalVideoFrames,
            audioBytes: v.webkitAudioDecodedByteCount, width: v.videoWidth};
}"""


def _cells(page: Any, camera: str) -> list[str]:
    cells: list[str] = page.eval_on_selector(
        f"#cameras tr:has(td:text-is('{camera}'))",
        "row => Array.from(row.cells).map(c => c.textContent)",
    )
    return cells


def test_console_plays_both_cameras_with_sound_and_shows_camera_states(
    rig: Rig, chromium: Any, tmp_path: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 1000}, timezone_id="UTC")
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.on(
        "response",
        lambda resp: (
            problems.append(f"HTTP {resp.status} {resp.url}") if resp.status >= 400 else None
        ),
    )
    page.goto(rig.base + "/")
    page.fill("#login-user", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.click("nav [data-view=playback]")  # the single-camera view: player and camera table
    page.wait_for_selector(f"#camera-select option[value='{HEVC_CAM}']", state="attached")
    try:
        page.wait_for_function(
            """() => {
                const t = document.getElementById('cameras').innerText;
                return t.includes('无法连接') && t.includes('在线');
            }""",
            timeout=30_000,
        )
        hevc, bframes, down = (_cells(page, c) for c in (HEVC_CAM, BFRAMES_CAM, DOWN_CAM))
        # Columns: camera, name, code, area, class, state, detail (the agent's reason), media.
        assert hevc[5].startswith("在线") and "HEVC 320x240 25 fps, aac 8 kHz 单声道" in hevc[7]
        assert bframes[5].startswith("在线") and "H264 320x240 25 fps, aac 16 kHz" in bframes[7]
        assert down[5] == "无法连接 unreachable", down
        assert down[6] and SECRET not in page.content() and "admin:" not in down[6], down
        page.wait_for_selector("#alerts li.alert-warning", state="attached", timeout=30_000)
        alerts = page.inner_text("#alerts")
        assert "[警告]" in alerts and DOWN_CAM in alerts, alerts
        # Alert times in Beijing time with the date, though the browser runs in UTC.
        today = datetime.now(tz=SHANGHAI).strftime("%Y/%m/%d")
        assert today in alerts, alerts
        for camera, sound in ((HEVC_CAM, True), (BFRAMES_CAM, True)):
            page.select_option("#camera-select", camera)
            page.click("#play")
            page.wait_for_function(
                "() => document.getElementById('video').currentTime > 1.5", timeout=60_000
            )
            if sound:
                page.wait_for_function(
                    "() => document.getElementById('video').webkitAudioDecodedByteCount > 0",
                    timeout=20_000,
                )
            stats = page.evaluate(PLAY_STATS)
            assert stats["frames"] > 0 and stats["width"] == 320, (camera, stats)
            assert f"正在回放 {camera}" in page.inner_text("#status")
    finally:
        # Kept with pytest's retained temporary directories, like the other browser tests'.
        page.screenshot(path=str(tmp_path / "installed-base-console.png"), full_page=True)
    assert not problems, problems
    own = (rig.base + "/", f"blob:{rig.base}/")
    assert requests and all(u.startswith(own) for u in requests), [
        u for u in requests if not u.startswith(own)
    ]
    assert any("/play/h264/" in u for u in requests), "the H.265 camera played as its rendition"
    page.close()


def test_console_names_every_camera_state_the_agent_reports() -> None:
    """A state the agent reports but the console cannot name would show as raw English."""
    from edge_agent.capture.status import CameraState

    script = (ROOT / "controller" / "web" / "i18n.js").read_text()
    labels: dict[str, str] = {}
    for state, label in re.findall(r'^\s+"state\.(\w+)": "([^"]+)",$', script, re.MULTILINE):
        labels.setdefault(state, label)  # the Chinese table comes first, English second
    assert set(labels) == {s.value for s in CameraState}, labels
    assert all(not label.isascii() for label in labels.values()), labels
    assert (labels["streaming"], labels["unreachable"], labels["auth_failed"]) == (
        "在线",
        "无法连接",
        "认证失败",
    )
