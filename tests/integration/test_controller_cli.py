"""`vigil-controller` init / issue-cert / register-device / serve, as an operator runs them.

Most commands run through `controller.__main__.main` in-process (same code path as the
console script, without paying an interpreter start each); `serve` runs as a real process
with the files the other commands wrote, and is stopped with SIGTERM by PID.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from controller.__main__ import main
from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.pki import common_name, pki_paths
from protos.vigil.v1 import ingest_pb2
from tests.integration.controller_proc import (
    DeviceCreds,
    Segment,
    device_channel,
    free_low_port,
    ingest_stub,
    upload,
)
from tests.support import ManagedProcess


def run(*argv: str) -> int:
    return main(list(argv))


def test_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "controller", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    for command in ("init", "issue-cert", "register-device", "serve"):
        assert command in out.stdout


def test_init_is_idempotent_and_force_replaces_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("init", "--data-dir", str(tmp_path)) == 0
    assert "created a new CA" in capsys.readouterr().out
    ca = pki_paths(tmp_path).ca_cert.read_bytes()
    assert run("init", "--data-dir", str(tmp_path)) == 0
    assert "kept the existing CA" in capsys.readouterr().out
    assert pki_paths(tmp_path).ca_cert.read_bytes() == ca
    assert run("init", "--data-dir", str(tmp_path), "--force") == 0
    assert pki_paths(tmp_path).ca_cert.read_bytes() != ca


def test_issue_cert_needs_init_and_a_valid_device_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    assert (
        run("issue-cert", "--data-dir", str(tmp_path), "--device-id", "d1", "--out", str(out)) == 1
    )
    assert "vigil-controller init" in caplog.text
    assert not out.exists()
    run("init", "--data-dir", str(tmp_path))
    bad = ["issue-cert", "--data-dir", str(tmp_path), "--device-id", "../d1", "--out", str(out)]
    assert run(*bad) == 1
    assert "invalid device id" in caplog.text
    days = ["issue-cert", "--data-dir", str(tmp_path), "--device-id", "d1", "--out", str(out)]
    assert run(*days, "--days", "0") == 2
    assert not out.exists()
    assert run(*days) == 0
    assert common_name((out / "d1.crt").read_bytes()) == "d1"


def test_register_device_writes_the_catalog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = ["register-device", "--data-dir", str(tmp_path), "--device-id", "nvr1"]
    place = ["--county", "wudu", "--site", "v1"]
    assert run(*base, *place, "--camera", "cam1", "--camera", "cam2") == 0
    assert run(*base, *place, "--camera", "cam/3") == 2
    assert "invalid camera id" in caplog.text
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        catalog = Catalog(engine, SystemClock())
        cams = {c.camera_id: (c.device_id, c.county, c.site) for c in catalog.cameras()}
    finally:
        engine.dispose()
    assert cams == {"cam1": ("nvr1", "wudu", "v1"), "cam2": ("nvr1", "wudu", "v1")}


def test_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = str(tmp_path / "d")
    assert run("serve", "--data-dir", data, "--check-config") == 2
    assert "vigil-controller init" in caplog.text
    run("init", "--data-dir", data)
    capsys.readouterr()
    assert run("serve", "--data-dir", data, "--check-config") == 0
    assert "configuration ok" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(f'data_dir = "{data}"\n[ingest]\nmax_chunk = 1\n')
    assert run("serve", "--config", str(bad), "--check-config") == 2
    assert "ingest.max_chunk" in caplog.text
    secret = tmp_path / "secret.toml"
    secret.write_text(f'data_dir = "{data}"\nstorage_url = "ftp://u:hunter2@x/"\n')
    assert run("serve", "--config", str(secret), "--check-config") == 2
    assert "storage_url" in caplog.text and "hunter2" not in caplog.text
    assert run("serve", "--check-config") == 2
    assert "--config FILE or --data-dir" in caplog.text


def _serve(data: Path, port: int, log: Path) -> ManagedProcess:
    argv = [sys.executable, "-m", "controller", "serve", "--data-dir", str(data)]
    env = {**os.environ, "VIGIL_MQTT__MODE": "off", "VIGIL_HTTP__ENABLED": "false"}
    return ManagedProcess([*argv, "--listen", f"127.0.0.1:{port}"], log, env=env)


def test_the_operator_flow_end_to_end(tmp_path: Path) -> None:
    """init -> register-device -> issue-cert -> serve -> an upload with those files -> SIGTERM."""
    data = tmp_path / "ctl"
    out = tmp_path / "agent"
    assert run("init", "--data-dir", str(data)) == 0
    place = ["--county", "wudu", "--site", "v1", "--camera", "cam1"]
    assert run("register-device", "--data-dir", str(data), "--device-id", "nvr1", *place) == 0
    assert run("issue-cert", "--data-dir", str(data), "--device-id", "nvr1", "--out", str(out)) == 0
    port = free_low_port()
    proc = _serve(data, port, tmp_path / "serve.log")
    try:
        proc.wait_port(port)
        creds = DeviceCreds(
            "nvr1",
            (out / "nvr1.crt").read_bytes(),
            (out / "nvr1.key").read_bytes(),
            (out / "ca.crt").read_bytes(),
            out / "nvr1.crt",
            out / "nvr1.key",
            out / "ca.crt",
        )
        channel = device_channel(port, creds)
        try:
            reply = upload(ingest_stub(channel), Segment.make("cam1", size=100_000))
        finally:
            channel.close()
        assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED
        assert (data / "objects" / reply.object_key).exists()
    finally:
        proc.stop(timeout=60)  # a clean stop may be slow on a loaded 2-core CI machine
    assert proc.proc.returncode == 0, proc.log_text()
    assert "stopping" in proc.log_text()


def test_serve_on_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    run("init", "--data-dir", str(data))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _serve(data, port, tmp_path / "serve.log")
        try:
            proc.proc.wait(timeout=60)
        finally:
            proc.stop()
    assert proc.proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.log_text()
