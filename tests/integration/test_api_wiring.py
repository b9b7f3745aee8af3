"""The HTTP component as `vigil-controller serve` wires it: built from a controller, started
and stopped with it; clear start-up errors for missing sharing keys and a port in use."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from controller.api.component import HttpComponent
from controller.assembly import Parts, build_controller
from controller.clock import SystemClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.runtime import StartupError
from tests.integration.controller_proc import prepare_data_dir


def config(data: Path, http: str = "127.0.0.1:0") -> ControllerConfig:
    return ControllerConfig.model_validate(
        {"data_dir": str(data), "grpc": {"listen": "127.0.0.1:0"}, "http": {"listen": http}}
    )


def test_serves_with_the_controller_and_stops_with_it(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path)
    ensure_keys(tmp_path)
    controller = build_controller(config(tmp_path), SystemClock(), Parts(http=True))
    controller.start()
    http = next(c for c in controller.components if isinstance(c, HttpComponent))
    try:
        assert http.port != 0
        assert httpx.get(f"{http.base_url}/api/v1/openapi.json").status_code == 200
        r = httpx.get(f"{http.base_url}/api/v1/devices")
        assert r.status_code == 401 and r.json()["reason"] == "unauthenticated"
    finally:
        controller.stop(grace_s=1.0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{http.base_url}/metrics", timeout=2)


def test_missing_sharing_keys_stop_start_up_with_the_fix(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path)
    with pytest.raises(StartupError, match="vigil-controller keys"):
        build_controller(config(tmp_path), SystemClock(), Parts(http=True))


def test_a_port_in_use_is_a_clear_start_error(tmp_path: Path) -> None:
    prepare_data_dir(tmp_path)
    ensure_keys(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        controller = build_controller(
            config(tmp_path, f"127.0.0.1:{port}"), SystemClock(), Parts(http=True)
        )
        try:
            with pytest.raises(OSError, match=f"HTTP 127.0.0.1:{port}"):
                controller.start()
        finally:
            controller.stop(grace_s=0.5)
