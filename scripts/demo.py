"""`make demo`: the whole platform on one machine with embedded defaults.

Starts, as separate processes exactly as they run in the field: two emulated cameras
(`vigil-camsim`: cam-1 H.264; cam-2 like most of Longnan's installed base, H.265 with G.711
A-law audio, whose video the agent records as it is and whose audio it converts to AAC at
the edge), the city controller (`vigil-controller serve`: SQLite catalog, local object store,
a managed Mosquitto, gRPC ingest with mutual TLS) and one village NVR agent
(`vigil-agent run`) that captures the cameras, buffers, uploads and reports health. The
installer steps an operator would do by hand (init, register-device, issue-cert,
mqtt-account) run first, so the demo also shows the provisioning flow.

    python scripts/demo.py                      # runs until Ctrl-C, prints what arrives
    python scripts/demo.py --seconds 30 --check # the test suite's smoke run: exit 0 when
                                                # segments arrived intact in the controller
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "nvr-demo-1"
CAMERAS = ("cam-1", "cam-2")
# camsim profile of each camera, by its 1-based number: cam-2 is the installed base's kind.
PROFILES = {2: "h265-pcma"}
DEMO_USER, DEMO_PASSWORD = "operator", "vigil-demo-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within {timeout:.0f} s")


@dataclass
class Demo:
    work: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def cli(self, *argv: str, stdin: str | None = None) -> None:
        subprocess.run(
            [sys.executable, "-m", *argv],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            input=stdin.encode() if stdin is not None else None,
        )

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.work / f"{name}.log", "ab")  # lives as long as the process
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def provision(self, grpc_port: int, mqtt_port: int, http_port: int, rtsp_port: int) -> Path:
        ctl, agent = self.work / "controller", self.work / "agent"
        self.cli("controller", "init", "--data-dir", str(ctl))
        self.cli(
            "controller",
            "register-device",
            "--data-dir",
            str(ctl),
            "--device-id",
            DEVICE,
            "--county",
            "wudu",
            "--site",
            "v001",
            *[a for cam in CAMERAS for a in ("--camera", cam)],
        )
        self.cli(
            "controller",
            "issue-cert",
            "--data-dir",
            str(ctl),
            "--device-id",
            DEVICE,
            "--out",
            str(agent / "pki"),
        )
        self.cli(
            "controller",
            "mqtt-account",
            "--data-dir",
            str(ctl),
            "--device-id",
            DEVICE,
            "--out",
            str(agent / "mqtt.password"),
        )
        self.cli(
            "controller",
            "user",
            "add",
            "--data-dir",
            str(ctl),
            "--user-id",
            DEMO_USER,
            "--org",
            "city",
            "--role",
            "admin",
            "--password-file",
            "-",
            stdin=DEMO_PASSWORD,
        )
        (self.work / "controller.toml").write_text(
            f'data_dir = "{ctl}"\n'
            f'[grpc]\nlisten = "127.0.0.1:{grpc_port}"\n'
            f'[mqtt]\nmode = "managed"\nport = {mqtt_port}\n'
            f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
        )
        cams = "".join(
            f'[[cameras]]\nid = "{cam}"\nurl = "rtsp://127.0.0.1:{rtsp_port}/cam/{i + 1}"\n'
            "segment_seconds = 4\n"
            for i, cam in enumerate(CAMERAS)
        )
        config = agent / "agent.toml"
        config.write_text(
            f'device_id = "{DEVICE}"\ncounty = "wudu"\nsite = "v001"\n'
            f'data_dir = "{agent / "data"}"\n{cams}'
            f'[uplink]\ncontroller = "127.0.0.1:{grpc_port}"\n'
            f'ca_cert = "{agent / "pki" / "ca.crt"}"\n'
            f'client_cert = "{agent / "pki" / f"{DEVICE}.crt"}"\n'
            f'client_key = "{agent / "pki" / f"{DEVICE}.key"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\nusername = "{DEVICE}"\n'
            f'password_file = "{agent / "mqtt.password"}"\nhealth_interval_s = 5\n'
        )
        return config


def committed(work: Path) -> list[tuple[str, int, bool]]:
    """(camera, size, chain_ok) of every segment in the controller's catalog."""
    db = work / "controller" / "catalog.db"
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT camera_id, size_bytes, chain_ok FROM segment").fetchall()
        except sqlite3.Error:
            return []
    return [(str(c), int(s), bool(ok)) for c, s, ok in rows]


def media(work: Path) -> dict[str, dict[str, object]]:
    """Each camera's latest probed media (codecs, size, audio) from the catalog."""
    db = work / "controller" / "catalog.db"
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                "SELECT camera_id, video_codec, width, height, audio_codec, audio_sample_rate "
                "FROM segment_media ORDER BY start_us"
            ).fetchall()
        except sqlite3.Error:
            return {}
    keys = ("video_codec", "width", "height", "audio_codec", "audio_sample_rate")
    return {str(row[0]): dict(zip(keys, row[1:], strict=True)) for row in rows}


def fleet_view(http_port: int) -> list[dict[str, object]]:
    """Log in to the control-centre API as the demo operator and list the fleet's devices."""
    base = f"http://127.0.0.1:{http_port}/api/v1"
    login = urllib.request.Request(
        f"{base}/login",
        data=json.dumps({"user_id": DEMO_USER, "password": DEMO_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as resp:
        token = json.loads(resp.read())["token"]
    devices = urllib.request.Request(
        f"{base}/devices", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(devices, timeout=10) as resp:
        result: list[dict[str, object]] = json.loads(resp.read())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work-dir", default=str(ROOT / "demo-data"))
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless segments arrived")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    demo = Demo(work)
    grpc_port, mqtt_port, http_port = free_port(), free_port(), free_port()
    rtsp_port, control_port = free_port(), free_port()
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        agent_config = demo.provision(grpc_port, mqtt_port, http_port, rtsp_port)
        bindir = Path(sys.executable).parent
        cams = demo.spawn(
            "camsim",
            [
                str(bindir / "vigil-camsim"),
                "serve",
                "--cameras",
                "2",
                "--port",
                str(rtsp_port),
                "--control-port",
                str(control_port),
                "--width",
                str(args.width),
                "--height",
                str(args.height),
                "--bitrate",
                "2000",
                "--label-prefix",
                "LONGNAN",
                *[a for n, p in PROFILES.items() for a in ("--camera-profile", f"{n}={p}")],
            ],
        )
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
        wait_port(rtsp_port, cams, "vigil-camsim", 180)
        wait_port(grpc_port, ctl, "vigil-controller", 60)
        wait_port(mqtt_port, ctl, "managed Mosquitto", 30)
        wait_port(http_port, ctl, "control-centre HTTP API", 30)
        demo.spawn("agent", [str(bindir / "vigil-agent"), "run", "--config", str(agent_config)])
        print(
            f"cameras     rtsp://127.0.0.1:{rtsp_port}/cam/1 (H.264) and /cam/2 (H.265 + G.711 "
            f"A-law) (faults: http://127.0.0.1:{control_port}/cameras)"
        )
        print(
            f"controller  gRPC 127.0.0.1:{grpc_port} (mutual TLS), MQTT 127.0.0.1:{mqtt_port}\n"
            f"console     http://127.0.0.1:{http_port}/ (user {DEMO_USER}, "
            f"password {DEMO_PASSWORD})"
        )
        print(f"logs        {work}/*.log   (Ctrl-C stops everything)")
        started = time.monotonic()
        seen = 0
        while not stop and (args.seconds <= 0 or time.monotonic() - started < args.seconds):
            for name, proc in demo.procs:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; see {work / (name + '.log')}")
                    return 1
            rows = committed(work)
            if len(rows) != seen:
                seen = len(rows)
                size = sum(r[1] for r in rows)
                print(
                    f"[{time.monotonic() - started:5.0f} s] {seen} segments in the city store "
                    f"({size / 1e6:.1f} MB), chain breaks: {sum(not r[2] for r in rows)}"
                )
            time.sleep(1.0)
        devices = fleet_view(http_port) if args.check else []
    finally:
        demo.stop()
    rows = committed(work)
    cameras = sorted({r[0] for r in rows})
    breaks = sum(not r[2] for r in rows)
    online = sorted(str(d["device_id"]) for d in devices if d.get("online"))
    seen_media = media(work)
    print(
        json.dumps(
            {
                "segments": len(rows),
                "cameras": cameras,
                "chain_breaks": breaks,
                "online_devices": online,
                "media": seen_media,
            }
        )
    )
    if args.check:
        ok = cameras == sorted(CAMERAS) and len(rows) >= 2 * len(CAMERAS) and breaks == 0
        ok = ok and online == [DEVICE]
        hevc = seen_media.get("cam-2", {})
        ok = ok and (hevc.get("video_codec"), hevc.get("audio_codec")) == ("hevc", "aac")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
