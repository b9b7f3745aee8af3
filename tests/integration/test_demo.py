"""`make demo` works: every deployable as its own process on embedded defaults (camsim,
controller with SQLite, local store and managed Mosquitto, agent with uplink and health), and
segments from both cameras reach the city store intact within half a minute."""

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
    assert summary["chain_breaks"] == 0
    assert summary["online_devices"] == ["nvr-demo-1"]  # seen over MQTT, read over HTTP
    agent_log = (work / "agent.log").read_text()
    assert "mqtt connected" in agent_log, agent_log[-2000:]
    controller_log = (work / "controller.log").read_text()
    assert "fleet: connected" in controller_log
    assert "Traceback" not in agent_log + controller_log
