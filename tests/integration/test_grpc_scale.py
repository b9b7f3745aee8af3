"""One controller holds thousands of agents' lease streams while uploads continue (issue 12).

A real controller in this process (grpc.aio, mutual TLS, SQLite, local store, the scheduler)
and 2,000 simulated agents in two child processes (bench.agent_swarm: each agent its own
TLS connection and device certificate). Every agent reports an inventory and holds a lease
stream; uploads of another device run the whole time. After every agent reports a new
segment (a replan), every stream must receive a lease naming it, and the uploads must have
kept committing. On the synchronous server (one thread per stream, 256 by default) the
streams past the pool, and then the uploads, were refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from controller.assembly import Parts, build_controller
from controller.clock import SystemClock
from controller.scheduler.options import SchedulerOptions
from protos.vigil.v1 import ingest_pb2
from tests.integration.controller_proc import (
    Segment,
    device_channel,
    ingest_stub,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
    upload,
)

AGENTS = 2_000
PROCESSES = 2
OPTIONS = SchedulerOptions(
    horizon_s=2.0, tick_s=0.1, replan_interval_s=2.0, default_link_bps=20_000_000,
    lease_grace_s=5.0, progress_interval_s=1.0,
)  # fmt: skip


def _swarm(data: Path, port: int, first: int, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.agent_swarm", "--data-dir", str(data), "--port",
         str(port), "--first", str(first), "--count", str(count), "--parallel", "100"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _answer(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the swarm exited with {proc.wait(5)}"
    answer: dict[str, Any] = json.loads(line)
    return answer


def _say(proc: subprocess.Popen[str], command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()


class Uploads:
    """Segments of one registered device uploaded back to back in a thread."""

    def __init__(self, port: int, dev: Any) -> None:
        self._channel = device_channel(port, dev)
        self._stub = ingest_stub(self._channel)
        self.committed = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        prev: Segment | None = None
        start = SystemClock().now_us() - 3_600_000_000
        while not self._stop.is_set():
            first = None if prev else start
            seg = Segment.make("upcam", size=512 * 1024, prev=prev, start_us=first)
            try:
                reply = upload(self._stub, seg)
                assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED
                self.committed += 1
                prev = seg
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code()}: {exc.details()}")
                time.sleep(0.2)

    def __enter__(self) -> Uploads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._channel.close()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[Path, int, Any]]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "uploader", ["upcam"])
    dev = issue_device(data, "uploader", tmp_path / "uploader")
    config = make_config(data, 0)
    ctl = build_controller(config, SystemClock(), Parts(scheduler=OPTIONS))
    ctl.start()
    try:
        yield data, ctl.grpc_port, dev
    finally:
        ctl.stop(grace_s=1.0)


def test_thousands_of_lease_streams_all_get_leases_while_uploads_continue(
    controller: tuple[Path, int, Any],
) -> None:
    data, port, dev = controller
    per = AGENTS // PROCESSES
    swarms = [_swarm(data, port, i * per, per) for i in range(PROCESSES)]
    try:
        with Uploads(port, dev) as uploads:
            t0 = time.monotonic()
            ready = [_answer(s) for s in swarms]
            connect_s = time.monotonic() - t0
            assert sum(r["ready"] for r in ready) == AGENTS, ready
            assert sum(r["first_lease"] for r in ready) == AGENTS, ready
            before = uploads.committed
            for s in swarms:
                _say(s, "replan")
            replans = [_answer(s) for s in swarms]
            delays = sorted(d for r in replans for d in r["lease_ms"])
            assert sum(r["missing"] for r in replans) == 0, [r["errors"] for r in replans]
            assert len(delays) == AGENTS
            # The uploads kept committing the whole time (and never failed).
            assert uploads.committed > before, (before, uploads.committed)
            assert uploads.failures == []
            print(
                f"{AGENTS} streams open in {connect_s:.1f} s; lease after replan p99 "
                f"{delays[int(len(delays) * 0.99) - 1]:.0f} ms; {uploads.committed} uploads"
            )
    finally:
        for s in swarms:
            try:
                _say(s, "stop")
            except (BrokenPipeError, OSError):
                pass
        for s in swarms:
            try:
                s.wait(30)
            except subprocess.TimeoutExpired:
                s.kill()
