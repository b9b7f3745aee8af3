"""Test helpers for anything that needs a real controller.

- `ControllerProcess`: `vigil-controller serve` as a subprocess on a free 127.0.0.1 port,
  stopped (or killed -9) by PID; restartable on the same port and data dir.
- `InProcessController`: the same controller built in this process (real gRPC server with
  mutual TLS on loopback, real SQLite, local object store), cheaper for most tests.
- PKI and registry set-up (`prepare_data_dir`, `issue_device`, `register`), an mTLS channel
  for a device (`device_channel`), and segment helpers (`Segment`, `upload`).

Usage:

    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    dev = issue_device(data, "dev1", tmp_path / "dev1")
    with InProcessController(data) as ctl:        # or ControllerProcess(data, tmp_path).start()
        stub = ingest_stub(device_channel(ctl.port, dev))
        seg = Segment.make("cam1", size=300_000)
        reply = upload(stub, seg)
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from controller.assembly import Controller, build_controller
from controller.catalog import Catalog, make_engine
from controller.clock import Clock, SystemClock
from controller.config import ControllerConfig
from controller.pki import init_pki, issue_device_cert, load_ca, utc_from_us, write_device_files
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.support import ManagedProcess, free_port

MiB = 1024 * 1024
CHUNK = 256 * 1024
SEGMENT_US = 10_000_000


def free_low_port() -> int:
    """A free TCP port on 127.0.0.1 *below* the kernel's ephemeral range.

    `free_port()` returns an ephemeral port; a controller subprocess takes ~2 s to bind it,
    and on a busy machine another process's outgoing connection can take that port in the
    meantime (or while a killed controller is down before its restart). connect() never
    picks ports below the ephemeral range, so these stay ours.
    """
    low = 20_000
    try:
        low_end = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low_end = 32_768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, max(low + 1000, low_end))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def now_dt() -> datetime:
    return utc_from_us(SystemClock().now_us())


def prepare_data_dir(data_dir: Path) -> None:
    """A data dir with the city PKI (what `vigil-controller init` makes)."""
    init_pki(data_dir, [], now_dt())


def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'catalog.db'}"


def register(
    data_dir: Path,
    device_id: str,
    cameras: list[str],
    county: str = "wudu",
    site: str = "village1",
    url: str | None = None,
) -> None:
    """Register a device and its cameras in the controller's catalog."""
    engine = make_engine(url or database_url(data_dir))
    try:
        catalog = Catalog(engine, SystemClock())
        catalog.upsert_device(device_id, county, site, "nvr")
        for camera in cameras:
            catalog.upsert_camera(camera, device_id)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class DeviceCreds:
    device_id: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    cert_path: Path
    key_path: Path
    ca_path: Path


def issue_device(
    data_dir: Path,
    device_id: str,
    out_dir: Path,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> DeviceCreds:
    """A client certificate from the data dir's CA (validity window overridable)."""
    ca = load_ca(data_dir)
    pair = issue_device_cert(ca, device_id, now_dt(), not_before=not_before, not_after=not_after)
    files = write_device_files(out_dir, device_id, pair, ca.cert_pem)
    return DeviceCreds(
        device_id, pair.cert_pem, pair.key_pem, ca.cert_pem, files.cert, files.key, files.ca_cert
    )


def expired_window() -> tuple[datetime, datetime]:
    now = now_dt()
    return now - timedelta(days=30), now - timedelta(days=1)


def device_channel(
    port: int,
    dev: DeviceCreds | None,
    ca_pem: bytes | None = None,
    max_send: int = 8 * MiB,
) -> grpc.Channel:
    """A TLS channel to 127.0.0.1:port presenting `dev`'s certificate (None: no client cert)."""
    if dev is None:
        assert ca_pem is not None
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=ca_pem or dev.ca_pem,
            private_key=dev.key_pem,
            certificate_chain=dev.cert_pem,
        )
    return grpc.secure_channel(
        f"127.0.0.1:{port}",
        creds,
        options=[
            ("grpc.max_send_message_length", max_send),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ],
    )


def status(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, details) of a failed call."""
    assert isinstance(err, grpc.Call), err
    return err.code(), err.details() or ""


def ingest_stub(channel: grpc.Channel) -> ingest_pb2_grpc.IngestStub:
    return ingest_pb2_grpc.IngestStub(channel)


@dataclass
class Segment:
    """A fake segment: random bytes (contents do not matter to ingest) and its header."""

    segment_id: str
    camera_id: str
    data: bytes
    start_us: int
    prev_sha256: bytes = b""
    duration_us: int = SEGMENT_US
    flags: int = 0

    @classmethod
    def make(
        cls,
        camera_id: str,
        size: int = 300_000,
        start_us: int | None = None,
        prev: Segment | None = None,
        segment_id: str | None = None,
    ) -> Segment:
        if start_us is None:
            start_us = prev.start_us + prev.duration_us if prev else SystemClock().now_us()
        return cls(
            segment_id or f"{camera_id}-{uuid.uuid4().hex[:12]}",
            camera_id,
            os.urandom(size),
            start_us,
            prev.sha256 if prev else b"",
        )

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()

    def header(self, offset: int = 0, **changes: Any) -> ingest_pb2.SegmentHeader:
        fields: dict[str, Any] = dict(
            segment_id=self.segment_id,
            camera_id=self.camera_id,
            start_unix_us=self.start_us,
            duration_us=self.duration_us,
            size_bytes=len(self.data),
            sha256=self.sha256,
            prev_sha256=self.prev_sha256,
            offset=offset,
            container="ts",
            flags=self.flags,
        )
        fields.update(changes)
        return ingest_pb2.SegmentHeader(**fields)

    def requests(
        self, offset: int = 0, chunk: int = CHUNK, end: int | None = None, **changes: Any
    ) -> Iterator[ingest_pb2.UploadRequest]:
        yield ingest_pb2.UploadRequest(header=self.header(offset, **changes))
        stop = len(self.data) if end is None else end
        for pos in range(offset, stop, chunk):
            yield ingest_pb2.UploadRequest(chunk=self.data[pos : min(pos + chunk, stop)])


def upload(
    stub: ingest_pb2_grpc.IngestStub, seg: Segment, offset: int = 0, chunk: int = CHUNK
) -> ingest_pb2.UploadResponse:
    return stub.Upload(seg.requests(offset, chunk), timeout=30)


def staged_size(data_dir: Path, device_id: str, segment_id: str) -> int:
    part = data_dir / "staging" / device_id / f"{segment_id}.part"
    try:
        return part.stat().st_size
    except OSError:
        return -1


def make_config(data_dir: Path, port: int = 0, **sections: Any) -> ControllerConfig:
    """Config for a test controller: `sections` are TOML sections (dicts) or top-level keys."""
    data: dict[str, Any] = {
        "data_dir": str(data_dir),
        "grpc": {"listen": f"127.0.0.1:{port}"},
        # No MQTT fleet unless a test asks for it (it would start a managed Mosquitto).
        "mqtt": {"mode": "off"},
        "http": {"enabled": False},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return ControllerConfig.model_validate(data)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, config: ControllerConfig) -> Path:
    """controller.toml for `config` (only what differs from the defaults)."""
    data = config.model_dump(exclude_defaults=True)
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict) and values:
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class InProcessController:
    """A controller built and started in this process; stop() or use as a context manager."""

    data_dir: Path
    sections: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    controller: Controller | None = None

    def start(self) -> InProcessController:
        config = make_config(self.data_dir, 0, **self.sections)
        self.controller = build_controller(config, self.clock)
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        assert self.controller is not None
        return self.controller.grpc_port

    @property
    def catalog(self) -> Catalog:
        assert self.controller is not None
        return self.controller.catalog

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(grace_s=1.0)
            self.controller = None

    def __enter__(self) -> InProcessController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ControllerProcess:
    """`vigil-controller serve --config` as a subprocess on a fixed free port."""

    def __init__(
        self,
        data_dir: Path,
        work_dir: Path,
        port: int | None = None,
        **sections: Any,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_low_port()
        self.config = make_config(data_dir, self.port, **sections)
        self.config_path = write_config(work_dir / f"controller-{self.port}.toml", self.config)
        self.log_path = work_dir / f"controller-{self.port}.log"
        self.proc: ManagedProcess | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "controller", "serve", "--config", str(self.config_path)]

    def start(self, timeout: float = 30.0) -> ControllerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        self.proc = ManagedProcess(self.argv(), self.log_path, env=env)
        self.proc.wait_port(self.port, timeout=timeout)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill9()
            self.proc.stop()  # closes the log handle

    def log_text(self) -> str:
        return self.proc.log_text() if self.proc else ""
