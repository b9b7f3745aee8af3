"""`vigil-agent` as a process: check-config, run (SIGTERM, SIGHUP), status, exit codes, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.clock import SystemClock
from edge_agent.model import SegmentFlag
from edge_agent.store import SegmentBuffer
from tests.integration.media import Clip, set_mtime, write_h264
from tests.support import ManagedProcess, free_port, wait_until
from vigil_camsim.launcher import CamsimProcess

SECRET = "Sup3r-s3cret"
AGENT = [sys.executable, "-m", "edge_agent"]


def write_config(path: Path, data_dir: Path, cameras: str) -> Path:
    path.write_text(f'device_id = "dev1"\ndata_dir = "{data_dir}"\n{cameras}')
    return path


def folder_camera(cid: str, folder: Path) -> str:
    return (
        f'[[cameras]]\nid = "{cid}"\nkind = "nvr_folder"\npath = "{folder}"\n'
        "segment_seconds = 2\nsettle_seconds = 0.2\n"
    )


def rtsp_camera(cid: str, url: str) -> str:
    return f'[[cameras]]\nid = "{cid}"\nurl = "{url}"\nsegment_seconds = 2\n'


def recording(folder: Path, name: str, frames: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_h264(folder / name, [Clip(frames=frames)])
    set_mtime(path, 60)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=60)


def segment_files(data_dir: Path, camera_id: str) -> list[Path]:
    return sorted((data_dir / "buffer" / "segments" / camera_id).glob("*/*.ts"))


def test_check_config_accepts_a_good_file_in_every_form(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "agent.toml",
        tmp_path / "data",
        rtsp_camera("c1", f"rtsp://admin:{SECRET}@10.0.0.5/stream1")
        + folder_camera("n1", tmp_path / "nvr"),
    )
    script = Path(sys.executable).with_name("vigil-agent")
    for argv in (
        [str(script), "--check-config", str(cfg)],
        [*AGENT, "check-config", str(cfg)],
        [*AGENT, "check-config", "--config", str(cfg)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "ok (device dev1, 2 cameras)" in done.stdout
        assert "rtsp://***@10.0.0.5/stream1" in done.stdout
        assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read configuration"),
        ("device_id = [", "not valid TOML"),
        (rtsp_camera("c1", f"http://admin:{SECRET}@h/x"), "must be rtsp:// or rtsps://"),
        ('[[cameras]]\nid = "c1"\nurl = "rtsp://h/x"\nsegment_seconds = 1\n', "segment_seconds"),
        ('[[cameras]]\nid = "c1"\nurl = "rtsp://h/x"\nsegment_seconds = 61\n', "segment_seconds"),
        ('[[cameras]]\nid = "c1"\nurl = "rtsp://h/x"\ncolour = "red"\n', "colour"),
        ('[[cameras]]\nid = "c1"\nkind = "nvr_folder"\n', "needs a path"),
    ],
)
def test_bad_config_exits_2_naming_file_and_field(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    cfg = tmp_path / "agent.toml"
    if content is not None:
        write_config(cfg, tmp_path / "data", content)
    for args in (["--check-config", str(cfg)], ["run", "--config", str(cfg)]):
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert str(cfg) in done.stderr and expected in done.stderr, done.stderr
        assert SECRET not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # nothing was created


def test_run_captures_stops_cleanly_on_sigterm_and_never_logs_credentials(
    tmp_path: Path, camsim: Callable[..., CamsimProcess]
) -> None:
    cams = camsim(cameras=1)
    live = cams.url(1).replace("rtsp://", f"rtsp://admin:{SECRET}@")
    dead = f"rtsp://admin:{SECRET}@127.0.0.1:{free_port()}/cam/1"
    missing = cams.url(9).replace("rtsp://", f"rtsp://viewer:{SECRET}@")
    data = tmp_path / "data"
    recording(tmp_path / "nvr", "a_20260101T000000.ts")
    cfg = write_config(
        tmp_path / "agent.toml",
        data,
        rtsp_camera("live", live)
        + rtsp_camera("dead", dead)
        + rtsp_camera("missing", missing)
        + folder_camera("n1", tmp_path / "nvr"),
    )
    agent = ManagedProcess([*AGENT, "run", "--config", str(cfg)], tmp_path / "agent.log")
    try:
        wait_until(lambda: len(segment_files(data, "live")) >= 2, 40, "live segments on disk")
        wait_until(lambda: len(segment_files(data, "n1")) == 2, 20, "folder segments on disk")
        status = run_cli("status", "--config", str(cfg))
        assert status.returncode == 0, status.stderr
        assert "status file of the running agent" in status.stdout
        second = run_cli("run", "--config", str(cfg))
        assert second.returncode == 1 and "in use by another process" in second.stderr
    finally:
        agent.stop(timeout=20)
    assert agent.proc.returncode == 0, agent.log_text()
    log = (tmp_path / "agent.log").read_text()
    assert SECRET not in log
    assert "camera dead: cannot open rtsp://***@127.0.0.1" in log
    assert "camera missing: cannot open rtsp://***@127.0.0.1" in log
    assert "signal 15: stopping" in log and "agent dev1 stopped" in log

    done = run_cli("status", "--config", str(cfg), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["cameras"]["n1"]["segments"] == 2
    assert report["cameras"]["live"]["segments"] >= 2
    assert all(c["chain_problems"] == [] for c in report["cameras"].values())
    with SegmentBuffer.open(data / "buffer", 10**9, SystemClock()) as buffer:
        assert buffer.segments("live")[-1].flags & SegmentFlag.TRUNCATED  # committed on stop
        assert buffer.segments("dead") == []


def test_sighup_reloads_cameras_and_keeps_running_on_a_bad_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    recording(tmp_path / "a", "a_20260101T000000.ts")
    recording(tmp_path / "b", "b_20260101T000000.ts")
    cfg = write_config(tmp_path / "agent.toml", data, folder_camera("a", tmp_path / "a"))
    agent = ManagedProcess([*AGENT, "run", "--config", str(cfg)], tmp_path / "agent.log")
    try:
        wait_until(lambda: len(segment_files(data, "a")) == 2, 20, "camera a captured")
        write_config(
            cfg,
            data,
            folder_camera("a", tmp_path / "a") + folder_camera("b", tmp_path / "b"),
        )
        os.kill(agent.pid, signal.SIGHUP)
        wait_until(lambda: len(segment_files(data, "b")) == 2, 20, "camera b added by SIGHUP")
        cfg.write_text("device_id = [")
        os.kill(agent.pid, signal.SIGHUP)
        wait_until(lambda: "reload refused" in agent.log_text(), 10, "bad reload refused")
        assert agent.alive()
    finally:
        agent.stop(timeout=20)
    assert agent.proc.returncode == 0, agent.log_text()
    assert len(segment_files(data, "a")) == 2  # camera a was not captured twice
