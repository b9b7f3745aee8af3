"""`make demo` works: every deployable as its own process on embedded defaults (camsim,
controller with SQLite, local store and managed Mosquitto, agent with uplink and health), and
segments from both cameras reach the city store intact within half a minute. cam-2 is an
H.265 camera with G.711 A-law audio, like most of Longnan's installed base: its segments arrive
and the catalog says hevc with AAC (the A-law converted at the edge, 8 kHz)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_brings_footage_from_both_cameras_to_the_city_store(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--work-dir",
            str(work),
            "--seconds",
            "30",
            "--check",
            "--width",
            "320",
            "--height",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in work.glob("*.log")
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{logs}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["cameras"] == ["cam-1", "cam-2"]
    assert summary["segments"] >= 4
    assert summary["media"]["cam-1"]["video_codec"] == "h264"
    hevc = summary["media"]["cam-2"]
    assert (hevc["video_codec"], hevc["audio_codec"], hevc["audio_sample_rate"]) == (
        "hevc",
        "aac",
        8000,
    ), hevc
    assert (hevc["width"], hevc["height"]) == (320, 180), hevc
    assert summary["chain_breaks"] == 0
    assert summary["online_devices"] == ["nvr-demo-1"]  # seen over MQTT, read over HTTP
    agent_log = (work / "agent.log").read_text()
    assert "mqtt connected" in agent_log, agent_log[-2000:]
    controller_log = (work / "controller.log").read_text()
    assert "fleet: connected" in controller_log
    assert "Traceback" not in agent_log + controller_log
